@suite_cynork
Feature: cynork tasks
  Tasks created with the real cynork binary run in real Podman sandboxes: the gateway dispatches
  them to a registered node served by the real worker API.

  Background:
    Given a running gateway with a worker node
    And I am logged in as admin

  @req_client_0101 @req_client_0153 @spec_cynai_client_clicommandsurface @spec_cynai_client_clitaskcreateprompt
  Scenario: a commands task waited for shows its output
    When I run cynork "task create --command 'echo hello' --wait"
    Then cynork exits with code 0
    And stdout contains "status=completed"
    And stdout contains "hello"

  @req_client_0101 @req_client_0151 @spec_cynai_client_clicommandsurface @spec_cynai_client_clitaskcreateprompt
  Scenario: the result of a finished task
    Given a finished task that ran "echo hello"
    When I run cynork "task result {task}"
    Then cynork exits with code 0
    And stdout contains "status=completed"
    And stdout contains "hello"

  @req_orches_0124 @req_orches_0125 @req_client_0143 @spec_cynai_client_clicommandsurface
  Scenario: the result as JSON has one of the six statuses
    Given a finished task that ran "echo hello"
    When I run cynork "task result {task} -o json"
    Then cynork exits with code 0
    And the JSON status is one of queued, running, completed, failed, canceled, superseded

  @req_client_0151 @spec_cynai_client_clitaskcreateprompt @spec_cynai_usrgwy_userapigateway
  Scenario: a named task
    When I run cynork "task create --command 'echo named' --name my-task"
    Then cynork exits with code 0
    And cynork "task get my-task" prints "task_name=my-task"

  @req_client_0151 @spec_cynai_client_clitaskcreateprompt
  Scenario: a task from a Markdown file
    Given a file "task.md" containing "# Summarise\nWhat is in this repository?"
    When I run cynork "task create -f {dir}/task.md"
    Then cynork exits with code 0
    And stdout contains "task_id="

  @req_client_0151 @req_client_0157 @spec_cynai_client_clitaskcreateprompt
  Scenario: a prompt with two attachments
    Given a file "a.txt" containing "first"
    And a file "b.txt" containing "second"
    When I run cynork "task create -p 'compare these' -a {dir}/a.txt -a {dir}/b.txt -o json"
    Then cynork exits with code 0
    And the JSON attachments name "a.txt" and "b.txt"

  @req_client_0157 @spec_cynai_client_clitaskcreateprompt
  Scenario: a missing attachment is refused before anything is sent
    When I run cynork "task create -p 'read this' -a {dir}/missing.txt"
    Then cynork exits with code 2
    And stderr contains "does not exist"
    And I have no tasks

  @req_client_0153 @spec_cynai_client_clitaskcreateprompt
  Scenario: a script file runs in the sandbox
    Given a file "job.sh" containing "echo from-script\necho second >&2"
    When I run cynork "task create -s {dir}/job.sh -w"
    Then cynork exits with code 0
    And stdout contains "from-script"
    And stdout contains "second"

  @req_client_0153 @spec_cynai_client_clitaskcreateprompt
  Scenario: two commands run in order
    When I run cynork "task create --command 'echo one' --command 'echo two' -w -o json"
    Then cynork exits with code 0
    And the JSON stdout of the first job is "one\ntwo\n"

  @req_client_0145 @spec_cynai_client_clicommandsurface
  Scenario: a command that fails sets the task-failed exit code
    When I run cynork "task create --command 'exit 4' -w"
    Then cynork exits with code 10
    And stdout contains "exit_code=4"

  @req_client_0155 @spec_cynai_client_clicommandsurface
  Scenario: list, get and logs
    Given a finished task that ran "echo hello"
    When I run cynork "task list"
    Then cynork exits with code 0
    And stdout contains "task_id={task}"
    And cynork "task get {task}" prints "task_id={task}"
    And cynork "task logs {task}" prints "hello"

  @req_client_0155 @spec_cynai_client_clicommandsurface
  Scenario: following the logs of a task that runs and ends
    When I run cynork "task create --command 'echo live; sleep 2; echo done' --name followed"
    Then cynork exits with code 0
    And cynork "task logs -f followed" prints "done"
    And cynork "task logs -f followed --stream stderr" exits with code 0

  @req_client_0155 @spec_cynai_client_clicommandsurface
  Scenario: cancel a finished task is a conflict
    Given a finished task that ran "echo hello"
    When I run cynork "task cancel {task} -y"
    Then cynork exits with code 5
    And stderr is one line without JSON
