@suite_cynork
Feature: cynork status and authentication
  The real cynork binary against the real user gateway (cynode-orchestrator all on a fresh
  PostgreSQL database). The session lives in cynork's own config file, private to the user.

  Background:
    Given a running gateway

  @req_client_0101 @spec_cynai_client_clicommandsurface
  Scenario: status reports a reachable gateway and why it is not ready
    When I run cynork "status"
    Then cynork exits with code 0
    And stdout contains "gateway=ok"
    And stdout contains "ready=false reason="

  @req_client_0158 @req_client_0143 @spec_cynai_client_clicommandsurface
  Scenario: status as JSON
    When I run cynork "status -o json"
    Then cynork exits with code 0
    And stdout is JSON with "gateway" equal to "ok"

  @req_client_0145 @spec_cynai_client_clicommandsurface
  Scenario: a gateway that is down is a network error
    Given the gateway is stopped
    When I run cynork "status"
    Then cynork exits with code 7
    And stderr contains "cannot reach gateway at"

  @req_client_0105 @spec_cynai_client_cliauth
  Scenario: log in with the password on stdin
    When I log in as "admin" with the bootstrap password on stdin
    Then cynork exits with code 0
    And stdout contains "logged_in=true user=admin"
    And the config file is private

  @req_client_0105 @req_client_0150 @spec_cynai_client_clisessionpersistence
  Scenario: a later process reuses the saved session
    Given I am logged in as admin
    When I run cynork "auth whoami"
    Then cynork exits with code 0
    And stdout contains "user=admin"

  @req_client_0104 @spec_cynai_client_cliauth
  Scenario: whoami without a token
    When I run cynork "auth whoami"
    Then cynork exits with code 3
    And stderr contains "cynork auth login"

  @req_client_0105 @spec_cynai_client_cliauth
  Scenario: a wrong password is refused in one readable line
    When I log in as "admin" with the password "not-the-password" on stdin
    Then cynork exits with code 3
    And stderr is one line without JSON

  @req_identy_0105 @spec_cynai_client_cliauth
  Scenario: refresh the session
    Given I am logged in as admin
    When I run cynork "auth refresh"
    Then cynork exits with code 0
    And the saved access token changed
    And cynork "auth whoami" exits with code 0

  @req_identy_0106 @spec_cynai_client_cliauth
  Scenario: logout revokes the session on the gateway
    Given I am logged in as admin
    When I run cynork "auth logout"
    Then cynork exits with code 0
    And stdout contains "logged_out=true"
    And cynork "auth whoami" exits with code 3
    And the token saved before logout is refused by the gateway

  @req_client_0150 @spec_cynai_client_clisessionpersistence
  Scenario: a corrupt config file is named, and login rewrites it
    Given a corrupt config file
    When I run cynork "task list"
    Then cynork exits with code 2
    And stderr names the config file
    When I log in as "admin" with the bootstrap password on stdin
    Then cynork exits with code 0
    And cynork "task list" exits with code 0
