@orchestrator
Feature: Node registration and configuration delivery
  A worker node registers with the pre-shared key, reports its capabilities, fetches its
  configuration (with its own worker API token and a ULID config_version) and acknowledges it.

  Background:
    Given a running orchestrator on a fresh database

  @REQ-ORCHES-0113 @REQ-ORCHES-0114 @REQ-ORCHES-0148 @REQ-ORCHES-0149
  Scenario: A node registers, reports capability, fetches its configuration and acknowledges it
    When node "node-1" registers with the correct pre-shared key
    Then the registration answer is 201 with a node JWT and the node config URL
    When node "node-1" reports its capabilities
    Then the report is accepted with 204
    When node "node-1" fetches its configuration
    Then the configuration has a ULID config_version, the node's worker URL and a worker token
    And the configuration selects the model "smollm2:135m"
    When node "node-1" acknowledges the configuration as applied
    Then the acknowledgement is accepted with 204
    And the orchestrator records the ack "applied" for that config_version

  @REQ-ORCHES-0113
  Scenario: A wrong pre-shared key is refused and nothing is stored
    When node "intruder" registers with the pre-shared key "guess"
    Then the answer is a 401 problem
    And no node is stored

  @REQ-ORCHES-0113
  Scenario: An ack for an unknown config_version is a conflict
    When node "node-1" registers with the correct pre-shared key
    And node "node-1" fetches its configuration
    And node "node-1" acknowledges config_version "01ARZ3NDEKTSV4RRFFQ69G5FAV" as applied
    Then the answer is a 409 problem
