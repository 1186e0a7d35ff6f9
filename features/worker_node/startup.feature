@phase1 @node_manager
Feature: Node manager start-up order, config ack and fail-fast
  The node manager registers, fetches its configuration from the URL the orchestrator gave it,
  starts the worker API with the delivered token, makes sure inference serves the selected
  model, acks the configuration, and only then tells systemd READY=1. Without inference it is
  never ready: it acks "failed", says why and exits non-zero.

  @REQ-WORKER-0253 @REQ-WORKER-0254 @REQ-WORKER-0255 @REQ-WORKER-0135
  Scenario: The node is ready only after its applied ack is recorded
    Given a running orchestrator
    And inference already answers on the node
    When the node manager starts
    Then it announces READY=1
    And at that moment the orchestrator holds the ack "applied" for the node's current config version
    And its status lines announced runtime check, registration, config fetch, worker API, inference and ack in that order
    And the orchestrator is ready

  @REQ-WORKER-0136 @REQ-WORKER-0100
  Scenario: The worker API runs with the bearer token the orchestrator delivered
    Given a running orchestrator
    And inference already answers on the node
    When the node manager starts
    Then it announces READY=1
    And the worker API accepts the node's token from the orchestrator and refuses any other
    And the token is in neither the worker API's command line nor its environment

  @REQ-WORKER-0253 @REQ-WORKER-0257
  Scenario: With no inference running it starts the selected container and removes it on stop
    Given a running orchestrator that selects the test inference image
    And no inference answers on the node
    When the node manager starts
    Then it announces READY=1
    And the inference container publishes its port on 127.0.0.1 only and lists the model
    When the node manager receives SIGTERM
    Then it exits with status 0
    And the inference container is gone

  @REQ-BOOTST-0002 @fail_fast
  Scenario: Without inference the node is never ready
    Given a running orchestrator that selects a nonexistent inference image
    And no inference answers on the node
    When the node manager starts
    Then it exits with a non-zero status
    And it never announced READY=1
    And its last status says why inference failed
    And the orchestrator holds the ack "failed" for the node
    And the orchestrator is not ready

  @bad_input
  Scenario: A node.yaml without the node id is refused before the orchestrator is contacted
    Given a running orchestrator
    When the node manager starts with a node.yaml that lacks "node.id"
    Then it exits with status 78 and one error naming "node.id"
    And the orchestrator never heard of the node
