@orchestrator
Feature: Workflow start, resume and lease
  A workflow runner takes a task's lease through the control plane's workflow API (bearer
  WORKFLOW_RUNNER_BEARER_TOKEN), saves and reads the task's checkpoint and releases the lease;
  one holder at a time drives a task.

  Background:
    Given a running orchestrator on a fresh database
    And I am logged in as the bootstrap admin
    And I create a "script" task "echo workflow"

  @req_orches_0144 @req_orches_0145 @spec_cynai_orches_workflowstartresumeapi
  Scenario: Starting a workflow returns a run id
    When the workflow runner "runner-1" starts the task
    Then the workflow answer is 200 with status "started" and a run_id

  @req_orches_0145 @spec_cynai_orches_workflowstartresumeapi
  Scenario: A second holder cannot start a running workflow
    When the workflow runner "runner-1" starts the task
    And the workflow runner "runner-2" starts the task
    Then the answer is a 409 problem

  @req_orches_0145 @spec_cynai_orches_workflowstartresumeapi
  Scenario: The same holder starting again is already running
    When the workflow runner "runner-1" starts the task
    And the workflow runner "runner-1" starts the task
    Then the workflow answer is 200 with status "already_running" and a run_id

  @req_orches_0144 @spec_cynai_orches_workflowstartresumeapi
  Scenario: Resume returns the last checkpoint
    When the workflow runner "runner-1" starts the task
    And the workflow runner saves a checkpoint at "plan_steps"
    And the workflow runner resumes the task
    Then the workflow answer is 200 with last_node_id "plan_steps"

  @req_orches_0146 @spec_cynai_orches_taskworkflowleaselifecycle
  Scenario: A released lease can be taken by another holder
    When the workflow runner "runner-1" starts the task
    And the workflow runner releases the lease
    And the workflow runner "runner-2" starts the task
    Then the workflow answer is 200 with status "started" and a run_id
