@teams
Feature: Teams share projects by role, behind one authorization check
  An admin gives a team accounts, puts them in groups and binds users and groups to roles in a
  shared project. Every request is decided afresh from the caller's current memberships,
  bindings and access rules; every membership change, grant, user state change and denial is a
  row of the access audit. A user's agents act with the rights of the task's owner.

  Background:
    Given a running orchestrator on a fresh database
    And the admin has created the users "alice", "bob" and "carol"
    And the admin has created the group "ml" with the member "alice"
    And the admin has created the project "vision" with the group "ml" as "member" and the user "bob" as "viewer"

  @req_access_0102 @req_access_0105 @req_access_0107 @req_access_0110 @req_identy_0107 @req_identy_0108 @req_identy_0114
  Scenario: A team shares a project by role, and every change and every denial is audited
    When "alice" creates a task in "vision"
    Then "bob" reads the task, created by "alice"
    And "bob" finds the task in his task list, created by "alice"
    And "bob" may not cancel the task: 403
    And the task does not exist for "carol": 404
    When the admin removes "alice" from the group "ml"
    Then "alice" may no longer create a task in "vision": 404
    But "alice" still creates a task in her personal project with the same access token
    And the access audit holds these rows:
      | actor | action              | resource_type | resource                            | decision |
      | admin | user.create         | user          | alice                               | allow    |
      | admin | group.member.add    | group         | ml/alice                            | allow    |
      | admin | rbac.grant          | role_binding  | member group:ml at project:{vision} | allow    |
      | admin | rbac.grant          | role_binding  | viewer user:bob at project:{vision} | allow    |
      | bob   | task.cancel         | task          | {task}                              | deny     |
      | carol | task.read           | task          | {task}                              | deny     |
      | admin | group.member.remove | group         | ml/alice                            | allow    |
      | alice | task.create         | project       | {vision}                            | deny     |

  @req_access_0107 @req_identy_0108 @req_identy_0114
  Scenario: Disabling a user refuses their access token, refresh token and API key at once
    Given "bob" holds a refresh token and an API key
    When the admin disables "bob"
    Then the access token, the refresh token and the API key of "bob" are each refused: 401
    And the access audit holds these rows:
      | actor | action       | resource_type | resource | decision |
      | admin | user.disable | user          | bob      | allow    |

  @req_usrgwy_0127 @req_access_0107 @req_access_0110 @req_identy_0107
  Scenario: An access rule that denies a model to a group hides it from the group's members
    Given a dispatchable node serving the model "smollm2:135m"
    Then "alice" is offered the models "cynodeai.pm, smollm2:135m" in "vision"
    And "bob" is offered the models "cynodeai.pm" in "vision"
    When the admin denies "model.use" on "model" "*" to the group "ml"
    Then "alice" is offered the models "cynodeai.pm" in "vision"
    And "alice" is offered the models "cynodeai.pm" in her personal project
    And "alice" may not chat with "smollm2:135m" in "vision": an OpenAI-shaped 403
    But the admin is still offered the models "cynodeai.pm, smollm2:135m" in "vision"

  @req_access_0107 @req_access_0108 @req_access_0110 @req_identy_0108
  Scenario: The sandbox agent of a member's task reaches only that task, under the group's access rules
    Given "alice" has a task in "vision" that waits for a node
    And "admin" has a task in his personal project that waits for a node
    When the sandbox agent of the task puts the artifact "out/first.txt"
    Then the tool answers with success
    When the sandbox agent of the task lists the artifacts of the task of "admin"
    Then the tool answers the error "context_mismatch"
    When the admin denies "mcp.tool.invoke" on "mcp.tool" "artifact.put" to the group "ml"
    And the sandbox agent of the task puts the artifact "out/second.txt"
    Then the tool answers the error "access_denied"
    And the sandbox agent of the task lists exactly the artifacts "out/first.txt"
    And the MCP audit of the task holds these "artifact.put" calls, oldest first:
      | decision | status  | error_type    |
      | allow    | success |               |
      | deny     | error   | access_denied |
    And the access audit holds these rows:
      | actor | action          | resource_type | resource     | decision | task   |
      | alice | mcp.tool.invoke | mcp.tool      | artifact.put | deny     | {task} |
