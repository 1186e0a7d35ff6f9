@foundation
Feature: The development environment's real components answer
  Every later test runs against real PostgreSQL, Podman and inference. These scenarios fail,
  rather than skip, when the bootstrap has not made a component present.

  Background:
    Given the development environment described by the bootstrap

  Scenario: PostgreSQL accepts queries in a fresh database
    When I create a fresh test database
    Then a query there returns the value I stored

  Scenario: The Podman socket runs a locked-down sandbox container
    When I run "echo hello from the sandbox" in the sandbox image with no network
    Then the container's output is "hello from the sandbox"
    And the container exited with code 0

  Scenario: The inference server serves the test model
    Then the inference server lists the test model
    And a chat completion with the test model returns text
