@phase1 @worker_api
Feature: Sandboxed job runs through the worker API
  The orchestrator posts a job to the node's worker API; the job runs in a Podman sandbox with
  no network, no capabilities, a read-only root, a per-job /workspace, the job's context in its
  env and no secret. Bad requests are refused with a problem naming the fault and create nothing.

  Background:
    Given a worker API started with its bearer token on stdin

  @REQ-WORKER-0140
  Scenario: A job's streams and exit code come back
    When the orchestrator runs "echo out; echo err >&2; exit 3" in a sandbox
    Then the job completed with exit code 3
    And stdout is "out"
    And stderr is "err"
    And no container of the job is left

  @REQ-SANDBX-0100
  Scenario Outline: There is no network with policy <policy>
    # No route exists, so no address outside is even tried; a service on the host's loopback
    # (PostgreSQL) is not the sandbox's loopback.
    When the orchestrator runs "ls /sys/class/net; echo routes: $(( $(wc -l < /proc/net/route) - 1 )); nc -w 2 127.0.0.1 5432 </dev/null" in a sandbox with network policy "<policy>"
    Then the job's exit code is not 0
    And stdout has the line "lo"
    And stdout has the line "routes: 0"
    And stderr contains "Connection refused"

    Examples:
      | policy     |
      | none       |
      | restricted |

  @REQ-WORKER-0104
  Scenario: The sandbox holds no capability and cannot change its root filesystem
    When the orchestrator runs "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /etc/x 2>/dev/null || echo read-only root" in a sandbox
    Then stdout has the line "CapEff: 0000000000000000"
    And stdout has the line "NoNewPrivs: 1"
    And stdout has the line "read-only root"

  @REQ-WORKER-0250
  Scenario: The job works in its own workspace directory on the host
    When the orchestrator runs "pwd; echo data > note.txt" in a sandbox
    Then stdout is "/workspace"
    And the job's host workspace holds "note.txt" with "data"

  @REQ-WORKER-0103 @REQ-SANDBX-0001
  Scenario: The sandbox env carries the job's context and no secret
    When the orchestrator runs "env" in a sandbox
    Then stdout has the job's CYNODE_TASK_ID, CYNODE_JOB_ID and CYNODE_WORKSPACE_DIR
    And stdout does not contain the bearer token

  @REQ-WORKER-0103
  Scenario: A job's env cannot override the reserved variables
    When the orchestrator runs "env" in a sandbox with env CYNODE_JOB_ID set to "spoofed"
    Then the request is refused with status 400 naming "CYNODE_JOB_ID"
    And no container of the job was created

  @REQ-WORKER-0142
  Scenario: A job over its timeout is killed
    When the orchestrator runs "echo started; sleep 600" in a sandbox with a timeout of 1 second
    Then the job status is "timeout"
    And stdout is "started"
    And no container of the job is left

  @REQ-WORKER-0145 @REQ-WORKER-0108
  Scenario: Output beyond 256 KiB is cut at a character boundary and flagged
    When the orchestrator runs "yes € | tr -d '\n' | head -c 1048575" in a sandbox
    Then stdout was truncated to 262143 bytes of "€"

  @REQ-WORKER-0141
  Scenario: A command that does not exist completes with exit code 127
    When the orchestrator runs the bare command "no-such-command" in a sandbox
    Then the job completed with exit code 127
    And stderr contains "no-such-command"

  @REQ-WORKER-0100 @REQ-WORKER-0143
  Scenario Outline: A bad request is refused and creates nothing: <case>
    When the orchestrator sends a job with <case>
    Then the request is refused with status <status> naming "<reason>"
    And no container of the job was created

    Examples:
      | case                       | status | reason              |
      | an image not allowlisted   | 400    | allowlist           |
      | a negative timeout         | 400    | negative            |
      | a huge timeout             | 400    | maximum             |
      | an unknown field           | 400    | unknown field       |
      | an unknown network policy  | 400    | network_policy      |
      | a 20 MiB body              | 413    | size limit          |
      | no bearer token            | 401    | missing             |
      | a wrong bearer token       | 401    | invalid bearer token |
