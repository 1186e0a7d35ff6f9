@suite_cynork
Feature: cynork on a gateway without worker nodes
  With no node to run them, commands tasks stay queued: what cynork shows while waiting, and how
  it cancels.

  Background:
    Given a running gateway
    And I am logged in as admin

  @req_client_0155 @spec_cynai_client_clicommandsurface
  Scenario: cancel a queued task
    Given a queued task
    When I run cynork "task cancel {task} -y"
    Then cynork exits with code 0
    And stdout contains "task_id={task} canceled=true"
    And cynork "task get {task}" prints "status=canceled"

  @req_client_0155 @spec_cynai_client_clicommandsurface
  Scenario: cancel asks first, and no is no
    Given a queued task
    When I run cynork "task cancel {task}" answering "n"
    Then cynork exits with code 0
    And stderr contains "Cancel task {task}? [y/N]"
    And cynork "task get {task}" prints "status=queued"

  @req_client_0155 @spec_cynai_client_clicommandsurface
  Scenario: a queued task's result has no output yet
    Given a queued task
    When I run cynork "task result {task}"
    Then cynork exits with code 0
    And stdout contains "status=queued"
