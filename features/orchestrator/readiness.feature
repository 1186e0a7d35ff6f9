@orchestrator
Feature: Orchestrator readiness follows the inference path

  Background:
    Given a running orchestrator on a fresh database

  @REQ-ORCHES-0120 @REQ-BOOTST-0002
  Scenario: Not ready while no node is dispatchable
    Then readyz answers 503 with a reason mentioning "no inference path available"
    When node "node-1" registers with the correct pre-shared key
    And node "node-1" fetches its configuration
    Then readyz answers 503 with a reason mentioning "no inference path available"

  @REQ-ORCHES-0120
  Scenario: Ready once a node acknowledged its configuration
    When node "node-1" registers with the correct pre-shared key
    And node "node-1" fetches its configuration
    And node "node-1" acknowledges the configuration as applied
    Then readyz answers 200 "ready"
