# services.cynodeai.orchestrator: the control plane (node API, dispatcher) and the user gateway,
# as two Type=notify units sharing one PostgreSQL database. The units (ordering, credentials,
# restart policy, hardening) come from systemd/units.nix, the source of systemd/*.service too.
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
  # Options left at null (unset) are not written.
  configFile = settingsFormat.generate "orchestrator.toml" (
    lib.filterAttrs (_: v: v != null) cfg.settings
  );
  port = addr: lib.toInt (lib.last (lib.splitString ":" addr));

  units = import ../systemd/units.nix {
    bindir = "${cfg.package}/bin";
    orchestratorConfig = "${configFile}";
    # Secrets reach the process only as systemd credentials, never through the environment.
    orchestratorCredentials = lib.filterAttrs (_: v: v != null) {
      jwt-secret = cfg.jwtSecretFile;
      node-registration-psk = cfg.nodeRegistrationPskFile;
      bootstrap-admin-password = cfg.bootstrapAdminPasswordFile;
      database-url = cfg.databaseUrlFile;
      worker-token-key = cfg.workerTokenKeyFile;
      worker-token-key-previous = cfg.workerTokenKeyPreviousFile;
    };
    # postgresql.target is reached only after nixpkgs' postgresql-setup.service created the
    # role and the database; postgresql.service alone is not enough.
    databaseUnits = lib.optional cfg.database.createLocally "postgresql.target";
    databaseRequired = cfg.database.createLocally;
    orchestratorUser = "cynodeai";
  };
  toService = import ./units.nix lib;

  local = lib.optionalAttrs cfg.database.createLocally {
    # Peer authentication over the local socket: no database password exists at all.
    environment.DATABASE_URL = "postgres:///cynodeai?host=/run/postgresql";
  };

  required = name: value: {
    assertion = value != null;
    message = "services.cynodeai.orchestrator.${name} must be set.";
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
            type = lib.types.nullOr lib.types.str;
            default = null;
            example = "http://orchestrator.example.org:12082";
            description = "Base URL at which worker nodes reach the control plane (required).";
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
          user_gateway_public_url = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            example = "https://ai.example.org";
            description = ''
              The URL people open the web console at. Behind a TLS-terminating reverse proxy,
              set it to the `https://` URL so that the console's session cookies are `Secure`
              (or list the proxy's address in `trusted_proxies`, freeform, and have it send
              `X-Forwarded-Proto`). The console itself ships with the package and is served by
              the user gateway at `/`.
            '';
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
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "File holding the key that signs user and node JWTs (required).";
    };
    nodeRegistrationPskFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "File holding the pre-shared key worker nodes register with (required).";
    };
    workerTokenKeyFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = ''
        File holding the key that encrypts the per-node worker API tokens in PostgreSQL
        (credential `worker-token-key`). Optional: without it the key is derived from the JWT
        secret. Changing it (or the JWT secret without it) needs `workerTokenKeyPreviousFile`.
      '';
    };
    workerTokenKeyPreviousFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = ''
        The worker token key before a rotation (credential `worker-token-key-previous`), used
        only to decrypt; every start re-encrypts all tokens with the current key, after which
        this can be removed.
      '';
    };
    bootstrapAdminPasswordFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "File holding the password of the `admin` user created at first start (required).";
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
      description = "Open the ports of the user gateway and control plane listen addresses.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.database.createLocally || cfg.databaseUrlFile != null;
        message = "services.cynodeai.orchestrator.databaseUrlFile must be set when database.createLocally is false.";
      }
      {
        assertion = cfg.settings.public_url != null;
        message = "services.cynodeai.orchestrator.settings.public_url must be set: nodes need the control plane's URL.";
      }
      (required "jwtSecretFile" cfg.jwtSecretFile)
      (required "nodeRegistrationPskFile" cfg.nodeRegistrationPskFile)
      (required "bootstrapAdminPasswordFile" cfg.bootstrapAdminPasswordFile)
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

    # Two definitions each, merged by the module system (lists concatenate).
    systemd.services.cynode-control-plane = lib.mkMerge [
      (toService units.cynode-control-plane)
      local
    ];
    systemd.services.cynode-user-gateway = lib.mkMerge [
      (toService units.cynode-user-gateway)
      local
    ];

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [
      (port cfg.settings.user_gateway_listen_addr)
      (port cfg.settings.control_plane_listen_addr)
    ];
  };
}
