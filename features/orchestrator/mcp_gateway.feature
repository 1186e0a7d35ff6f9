@orchestrator
Feature: The MCP gateway checks and audits every tool call
  Agents read and change the system only through MCP tools. Each call is checked against the
  agent's token, its role's tool list and its context, and leaves exactly one audit row, never
  holding the call's arguments or result.

  Background:
    Given a running orchestrator on a fresh database
    And I am logged in as the bootstrap admin
    And I create a "script" task "echo for the agents"

  @REQ-MCPGAT-0001 @REQ-MCPGAT-0002 @REQ-MCPGAT-0107 @REQ-MCPTOO-0101 @REQ-AGENTS-0109
  Scenario: The Project Manager reads a task through the gateway
    When the project-manager agent calls "db.task.get" for the task
    Then the tool answers with the task
    And the MCP audit holds exactly one "allow" "success" row for "db.task.get" by "pm"

  @REQ-MCPGAT-0108 @REQ-MCPGAT-0114 @REQ-MCPTOO-0103
  Scenario: A sandbox agent may not read the task database
    When the sandbox agent calls "db.task.get" for the task
    Then the tool answers the error "not_allowed"
    And the MCP audit holds exactly one "deny" "error" row for "db.task.get" by "sandbox"

  @REQ-MCPGAT-0108 @REQ-MCPGAT-0116
  Scenario: A call without an agent token is refused
    When the anonymous agent calls "artifact.list" for the task
    Then the tool answers the error "unauthenticated"
    And the MCP audit holds exactly one "deny" "error" row for "artifact.list" by "anonymous"
