# THE source of every CyNodeAI systemd unit: ordering, credentials, restart policy, timeouts,
# hardening and the syscalls the binaries need. Plain Nix, no nixpkgs: the files in this
# directory are rendered from it (`CYNODE_WRITE_UNITS=1 cargo test -p cynode-e2e --test
# systemd_units`; that test fails when they differ), and nixos-modules/*.nix pass it their paths and map it onto systemd.services.
#
# Each unit is { comment; Unit; Service; Install; }: section -> directive -> value, where a list
# renders as one line per element, a bool as yes/no, an attrset (Environment only) as K=V lines.
{
  # Where the binaries live (the package installs every workspace binary side by side, so the
  # node manager finds cynode-worker-api, and the worker API its sidecars, next to itself).
  bindir ? "/usr/bin",
  orchestratorConfig ? "/etc/cynode/orchestrator.toml",
  nodeConfig ? "/etc/cynode/node.yaml",
  # Secrets: credential name -> file. Absent from the attrset = not loaded.
  orchestratorCredentials ? {
    database-url = "/etc/cynode/credentials/database-url";
    jwt-secret = "/etc/cynode/credentials/jwt-secret";
    node-registration-psk = "/etc/cynode/credentials/node-registration-psk";
    bootstrap-admin-password = "/etc/cynode/credentials/bootstrap-admin-password";
  },
  nodeCredentials ? {
    node-registration-psk = "/etc/cynode/credentials/node-registration-psk";
  },
  workerCredentials ? {
    worker-api-bearer-token = "/etc/cynode/credentials/worker-api-bearer-token";
  },
  # Units the orchestrator orders after when the database is local. Debian: postgresql.service
  # (the cluster is up when it is active); NixOS: postgresql.target (reached only after
  # postgresql-setup.service created the role and database).
  databaseUnits ? [ "postgresql.service" ],
  # Wanted and ordered after, not required: a remote database is fine too.
  databaseRequired ? false,
  # DynamicUser= name; on NixOS also the PostgreSQL role it logs in as by peer authentication.
  orchestratorUser ? "cynode-orchestrator",
  podmanUnit ? "podman.socket",
  podmanSocket ? "/run/podman/podman.sock",
  # The node's state; a directory under /var/lib is created by systemd (StateDirectory=),
  # anywhere else it must exist and is made writable (ReadWritePaths=).
  nodeStateDir ? "/var/lib/cynode/state",
  # kill(1), for ExecReload= (SIGHUP: the node manager re-reads its labels and concurrency).
  killBin ? "/bin/kill",
}:
let
  varLib = "/var/lib/";
  underVarLib = p: builtins.substring 0 (builtins.stringLength varLib) p == varLib;
  relVarLib = p: builtins.substring (builtins.stringLength varLib) (builtins.stringLength p) p;
  writableDir =
    dir:
    if underVarLib dir then
      {
        StateDirectory = relVarLib dir;
        StateDirectoryMode = "0700";
      }
    else
      { ReadWritePaths = [ dir ]; };

  loadCredentials = creds: map (name: "${name}:${creds.${name}}") (builtins.attrNames creds);

  # Shared by every unit.
  base = {
    NoNewPrivileges = true;
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    UMask = "0077";
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    RemoveIPC = true;
    SystemCallArchitectures = "native";
    RestrictAddressFamilies = [ "AF_UNIX AF_INET AF_INET6" ];
    SystemCallErrorNumber = "EPERM";
  };

  # systemd 252's @system-service (Debian 12) has no Landlock syscalls; systemd 256+ (NixOS
  # 25.11) lists them, where naming them again is harmless. The agents confine themselves with
  # Landlock after start-up, so both renderings name them.
  landlock = "landlock_create_ruleset landlock_add_rule landlock_restrict_self";
  deny = "~@privileged @resources @mount @swap @reboot @module @raw-io @obsolete @cpu-emulation @debug";

  orchestrator =
    {
      subcommand,
      description,
      credentials,
      extraAfter ? [ ],
      extraWants ? [ ],
    }:
    {
      comment = ''
        CyNodeAI ${description}. Type=notify: active once migrations ran and it listens.
        Secrets arrive only as credentials (never env, never the config file); a missing one
        fails the start (243/CREDENTIALS) without a restart loop.
      '';
      Unit = {
        Description = "CyNodeAI ${description}";
        Documentation = "https://github.com/cynodeai/cynodeai-rs/blob/main/orchestrator/README.md";
        After = [ "network-online.target" ] ++ databaseUnits ++ extraAfter;
        Wants = [ "network-online.target" ] ++ extraWants ++ (if databaseRequired then [ ] else databaseUnits);
        StartLimitIntervalSec = "5min";
        StartLimitBurst = 5;
        AssertPathExists = orchestratorConfig;
      } // (if databaseRequired then { Requires = databaseUnits; } else { });
      Service = base // {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = "${bindir}/cynode-orchestrator --config ${orchestratorConfig} ${subcommand}";
        LoadCredential = loadCredentials credentials;
        Restart = "on-failure";
        RestartSec = "2s";
        RestartPreventExitStatus = "78 243";
        TimeoutStartSec = "120s";
        TimeoutStopSec = "45s";
        DynamicUser = true;
        User = orchestratorUser;
        PrivateDevices = true;
        ProcSubset = "pid";
        SystemCallFilter = [
          "@system-service"
          "~@privileged @resources"
        ];
      };
      Install.WantedBy = [ "multi-user.target" ];
    };

  # Node agents run as root only to reach the rootful Podman socket; they keep no capability.
  nodeHardening = base // {
    User = "root";
    PrivateMounts = true;
    SystemCallFilter = [
      "@system-service ${landlock}"
      deny
    ];
  };
in
{
  cynode-control-plane = orchestrator {
    subcommand = "control-plane";
    description = "orchestrator control plane (node registration, configuration, dispatcher)";
    credentials = orchestratorCredentials;
  };

  cynode-user-gateway = orchestrator {
    subcommand = "user-gateway";
    description = "orchestrator user API gateway (auth, tasks)";
    # The gateway never sees the node registration PSK.
    credentials = removeAttrs orchestratorCredentials [ "node-registration-psk" ];
    # The control plane applies the migrations.
    extraAfter = [ "cynode-control-plane.service" ];
    extraWants = [ "cynode-control-plane.service" ];
  };

  cynode-node-manager = {
    comment = ''
      CyNodeAI node manager: registers the node, fetches its configuration, starts the worker
      API (its child, token on stdin) and makes sure inference answers; acks the configuration
      and only then sends READY=1 (Type=notify). If inference cannot start it says why in
      STATUS= and exits 1. Exit 75 (new configuration) restarts; 78 (bad node.yaml) and 243
      (missing credential) do not. KillMode=mixed: SIGTERM to the node manager only, which stops
      its worker API and containers itself. After start-up it confines itself with Landlock and
      drops every capability ("self-hardening applied" in the journal).
    '';
    Unit = {
      Description = "CyNodeAI node manager (registration, worker API and inference supervision)";
      Documentation = "https://github.com/cynodeai/cynodeai-rs/blob/main/agents/node-manager/README.md";
      Requires = [ podmanUnit ];
      After = [
        "network-online.target"
        podmanUnit
      ];
      Wants = [ "network-online.target" ];
      StartLimitIntervalSec = "10min";
      StartLimitBurst = 5;
      AssertPathExists = nodeConfig;
    };
    Service = nodeHardening // writableDir nodeStateDir // {
      Type = "notify";
      NotifyAccess = "main";
      ExecStart = "${bindir}/cynode-node-manager --config ${nodeConfig}";
      # `systemctl reload`: labels and sandbox.max_concurrency from the config file, reported
      # at once; other changed keys need a restart (the node manager says which).
      ExecReload = "${killBin} -HUP $MAINPID";
      Environment = {
        CYNODE_STATE_DIR = nodeStateDir;
        CYNODE_PODMAN_SOCKET = podmanSocket;
      };
      LoadCredential = loadCredentials nodeCredentials;
      # Pulling an inference image and loading a model can take minutes on a cold node.
      TimeoutStartSec = "15min";
      KillMode = "mixed";
      TimeoutStopSec = "90s";
      WatchdogSec = "60s";
      Restart = "on-failure";
      RestartSec = "10s";
      RestartPreventExitStatus = "78 243";
      # GPU detection only looks for /dev/nvidia* and /dev/kfd; nothing here opens a device.
      DevicePolicy = "closed";
    };
    Install.WantedBy = [ "multi-user.target" ];
  };

  cynode-worker-api = {
    comment = ''
      CyNodeAI worker API as its own unit, for nodes whose worker API is not the node manager's
      child (the node manager normally starts it and hands the token over on stdin; then this
      unit is not used). Token: credential worker-api-bearer-token. The process confines itself
      at start-up: Landlock to the mount root and the Podman socket's directory, every
      capability dropped.
    '';
    Unit = {
      Description = "CyNodeAI worker API (runs orchestrator jobs in Podman sandboxes)";
      Documentation = "https://github.com/cynodeai/cynodeai-rs/blob/main/agents/worker-api/README.md";
      Requires = [ podmanUnit ];
      After = [
        "network-online.target"
        podmanUnit
      ];
      Wants = [ "network-online.target" ];
      PartOf = [ "cynode-node-manager.service" ];
      StartLimitIntervalSec = "10min";
      StartLimitBurst = 5;
    };
    Service = nodeHardening // writableDir "${nodeStateDir}/sandbox_mounts" // {
      Type = "exec";
      ExecStart = "${bindir}/cynode-worker-api";
      Environment = {
        WORKER_API_LISTEN_ADDR = "0.0.0.0:12090";
        CYNODE_PODMAN_SOCKET = podmanSocket;
        CYNODE_SANDBOX_MOUNT_ROOT = "${nodeStateDir}/sandbox_mounts";
      };
      LoadCredential = loadCredentials workerCredentials;
      Restart = "on-failure";
      RestartSec = "5s";
      RestartPreventExitStatus = "78 243";
      # SIGTERM stops running sandboxes and removes them before the process exits.
      TimeoutStopSec = "60s";
      PrivateDevices = true;
      ProcSubset = "pid";
    };
    Install.WantedBy = [ "multi-user.target" ];
  };
}
