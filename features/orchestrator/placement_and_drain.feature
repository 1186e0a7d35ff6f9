@orchestrator
Feature: Placement, drain and node telemetry
  The scheduler places each job on a node that fits it, a job no node fits waits with a reason
  its owner can read, an admin takes a node out of service and back, and what the control plane
  pulls from a node's telemetry is informational only.

  Background:
    Given a running orchestrator on a fresh database
    And a dispatchable node whose worker answers at once
    And I am logged in as the bootstrap admin

  @REQ-ORCHES-0100 @REQ-ORCHES-0107
  Scenario: A job that needs what no node offers waits with the reason and can be canceled
    When I create a "script" task "echo gpu" requiring the label "gpu"
    Then the task waits with the reason "no node has the labels gpu"
    And the worker received nothing
    When I cancel the task
    Then the task becomes "canceled"

  @REQ-ORCHES-0100
  Scenario: A drained node gets no new work until it is undrained
    When I drain node "node-1"
    And I create a "script" task "echo later"
    Then the task waits with the reason "every node is drained"
    And the worker received nothing
    When I undrain node "node-1"
    Then the task becomes "completed"

  @REQ-ORCHES-0141 @REQ-ORCHES-0142 @REQ-ORCHES-0143
  Scenario: A node without a telemetry API still gets work
    When I create a "script" task "echo still"
    Then the task becomes "completed"
    And node "node-1" shows no telemetry and is active
