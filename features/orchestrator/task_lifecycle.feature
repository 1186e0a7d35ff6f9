@orchestrator
Feature: Task lifecycle through the user gateway
  A user logs in, creates a task, and the control plane dispatches it to the node's worker API
  with that node's own token; the result, status and logs come back through the gateway.

  Background:
    Given a running orchestrator on a fresh database
    And a dispatchable node whose worker answers at once
    And I am logged in as the bootstrap admin

  @REQ-ORCHES-0121 @REQ-ORCHES-0122 @REQ-ORCHES-0123 @REQ-ORCHES-0124 @REQ-ORCHES-0125 @REQ-ORCHES-0128
  Scenario: A script task runs in the sandbox and its result is stored
    When I create a "script" task "echo hello"
    Then the task becomes "completed"
    And the worker received the command "sh" "-c" "echo hello" with the node's token
    And the task logs show stdout "ran: echo hello"

  Scenario: A command that exits non-zero fails its task and keeps its output
    When I create a "commands" task "exit 127"
    Then the task becomes "failed"
    And the task summary says "job failed with exit code 127"
    And the task result keeps exit code 127 and stderr "sh: Tell: not found"

  @REQ-ORCHES-0126
  Scenario: A prompt task is never run as shell
    When I create a "prompt" task "echo pwned"
    Then the task becomes "failed"
    And the task summary says "project manager model is not available"
    And the worker received nothing

  @REQ-USRGWY-0124 @REQ-IDENTY-0122
  Scenario: A logged-out token is refused
    When I log out
    Then asking who I am is a 401 problem
