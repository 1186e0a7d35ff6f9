# services.cynodeai.orchestrator: the control plane (node API, dispatcher) and the user gateway,
# as two Type=notify units sharing one PostgreSQL database.
self:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.cynodeai.orchestrator;
  settingsFormat = pkgs.formats.toml { };
  configFile = settingsFormat.generate "orchestrator.toml" cfg.settings;

  # Secrets reach the process only as systemd credentials, never through the environment.
  credentials =
    [
      "jwt-secret:${cfg.jwtSecretFile}"
      "node-registration-psk:${cfg.nodeRegistrationPskFile}"
      "bootstrap-admin-password:${cfg.bootstrapAdminPasswordFile}"
    ]
    ++ lib.optional (cfg.databaseUrlFile != null) "database-url:${cfg.databaseUrlFile}";

  hardening = import ./hardening.nix // {
    DynamicUser = true;
    User = "cynodeai";
    PrivateDevices = true;
    ProtectProc = "invisible";
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
    ];
    MemoryDenyWriteExecute = true;
    SystemCallFilter = [
      "@system-service"
      "~@privileged @resources"
    ];
    CapabilityBoundingSet = "";
  };

  unit = subcommand: description: {
    inherit description;
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" ] ++ lib.optional cfg.database.createLocally "postgresql.service";
    wants = [ "network-online.target" ];
    requires = lib.optional cfg.database.createLocally "postgresql.service";
    environment = lib.optionalAttrs cfg.database.createLocally {
      # Peer authentication over the local socket: no database password exists at all.
      DATABASE_URL = "postgres:///cynodeai?host=/run/postgresql";
    };
    serviceConfig = hardening // {
      Type = "notify";
      ExecStart = "${lib.getExe' cfg.package "cynode-orchestrator"} ${subcommand} --config ${configFile}";
      LoadCredential = credentials;
      Restart = "on-failure";
      RestartSec = 5;
      TimeoutStartSec = 120;
    };
  };
in
{
  options.services.cynodeai.orchestrator = {
    enable = lib.mkEnableOption "the CyNodeAI orchestrator (control plane and user gateway)";

    package = lib.mkOption {
      type = lib.types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.cynodeai;
      defaultText = lib.literalExpression "cynodeai.packages.\${system}.cynodeai";
      description = "The package providing `cynode-orchestrator`.";
    };

    settings = lib.mkOption {
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options = {
          public_url = lib.mkOption {
            type = lib.types.str;
            example = "http://orchestrator.example.org:12082";
            description = "Base URL at which worker nodes reach the control plane.";
          };
          control_plane_listen_addr = lib.mkOption {
            type = lib.types.str;
            default = "0.0.0.0:12082";
            description = "Listen address of the control plane (node API).";
          };
          user_gateway_listen_addr = lib.mkOption {
            type = lib.types.str;
            default = "0.0.0.0:12080";
            description = "Listen address of the user gateway (auth, tasks).";
          };
          inference_model = lib.mkOption {
            type = lib.types.str;
            default = "qwen3.5:0.8b";
            description = "Model every node must serve before it counts as ready.";
          };
        };
      };
      default = { };
      description = ''
        Orchestrator settings, written to `orchestrator.toml` (see `orchestrator/README.md` for
        every key). Secrets do not belong here: use the `*File` options.
      '';
    };

    jwtSecretFile = lib.mkOption {
      type = lib.types.path;
      description = "File holding the key that signs user and node JWTs.";
    };
    nodeRegistrationPskFile = lib.mkOption {
      type = lib.types.path;
      description = "File holding the pre-shared key worker nodes register with.";
    };
    bootstrapAdminPasswordFile = lib.mkOption {
      type = lib.types.path;
      description = "File holding the password of the `admin` user created at first start.";
    };
    databaseUrlFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "File holding `DATABASE_URL`, for a database not created locally.";
    };

    database.createLocally = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Create the `cynodeai` database and role in the local PostgreSQL.";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the user gateway and control plane ports.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.database.createLocally || cfg.databaseUrlFile != null;
        message = "services.cynodeai.orchestrator: set databaseUrlFile when database.createLocally is false.";
      }
      {
        assertion = cfg.settings ? public_url;
        message = "services.cynodeai.orchestrator.settings.public_url must be set: nodes need the control plane's URL.";
      }
    ];

    services.postgresql = lib.mkIf cfg.database.createLocally {
      enable = true;
      ensureDatabases = [ "cynodeai" ];
      # The service's (dynamic) user `cynodeai` logs in as the role of the same name through
      # peer authentication on the local socket.
      ensureUsers = [
        {
          name = "cynodeai";
          ensureDBOwnership = true;
        }
      ];
    };

    # The control plane applies migrations; the gateway starts after it.
    systemd.services.cynode-control-plane = unit "control-plane" "CyNodeAI control plane";
    systemd.services.cynode-user-gateway = lib.recursiveUpdate (unit "user-gateway" "CyNodeAI user gateway") {
      after = [ "cynode-control-plane.service" ];
      wants = [ "cynode-control-plane.service" ];
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [
      12080
      12082
    ];
  };
}
