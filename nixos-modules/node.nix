# services.cynodeai.node: a worker node. The node manager registers with the orchestrator,
# starts the worker API (its child) and makes sure inference answers before it reports ready.
self:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.cynodeai.node;
  settingsFormat = pkgs.formats.yaml { };
  configFile = settingsFormat.generate "node.yaml" (
    lib.recursiveUpdate {
      version = 1;
      storage.state_dir = "/var/lib/cynode/state";
      sandbox.podman_socket = "/run/podman/podman.sock";
      worker_api.binary = lib.getExe' cfg.package "cynode-worker-api";
    } cfg.settings
  );
in
{
  options.services.cynodeai.node = {
    enable = lib.mkEnableOption "a CyNodeAI worker node (node manager and worker API)";

    package = lib.mkOption {
      type = lib.types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.cynodeai;
      defaultText = lib.literalExpression "cynodeai.packages.\${system}.cynodeai";
      description = "The package providing `cynode-node-manager` and `cynode-worker-api`.";
    };

    settings = lib.mkOption {
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options = {
          orchestrator.url = lib.mkOption {
            type = lib.types.str;
            example = "http://orchestrator.example.org:12082";
            description = "The orchestrator's control plane.";
          };
          node.id = lib.mkOption {
            type = lib.types.str;
            default = config.networking.hostName;
            defaultText = lib.literalExpression "config.networking.hostName";
            description = "The node's slug, unique among the orchestrator's nodes.";
          };
          worker_api.public_base_url = lib.mkOption {
            type = lib.types.str;
            example = "http://worker-1.example.org:12090";
            description = "URL at which the orchestrator reaches this node's worker API.";
          };
        };
      };
      default = { };
      description = ''
        `node.yaml` settings (the upstream schema: orchestrator, node, worker_api, sandbox,
        inference, storage). The registration PSK does not belong here: use
        `registrationPskFile`.
      '';
    };

    registrationPskFile = lib.mkOption {
      type = lib.types.path;
      description = "File holding the orchestrator's node registration pre-shared key.";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the worker API port (12090) for the orchestrator.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.settings ? orchestrator && cfg.settings.orchestrator ? url;
        message = "services.cynodeai.node.settings.orchestrator.url must be set.";
      }
      {
        assertion = cfg.settings ? worker_api && cfg.settings.worker_api ? public_base_url;
        message = "services.cynodeai.node.settings.worker_api.public_base_url must be set: the orchestrator dispatches jobs there.";
      }
    ];

    # Sandboxes are created through the Podman REST API on its socket.
    virtualisation.podman.enable = true;
    systemd.sockets.podman.wantedBy = [ "sockets.target" ];
    virtualisation.containers.containersConf.settings.containers.default_ulimits = [
      "nofile=1024:1024"
      "nproc=1024:1024"
    ];

    systemd.services.cynode-node-manager = {
      description = "CyNodeAI node manager";
      wantedBy = [ "multi-user.target" ];
      after = [
        "network-online.target"
        "podman.socket"
      ];
      wants = [ "network-online.target" ];
      requires = [ "podman.socket" ];
      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = "${lib.getExe' cfg.package "cynode-node-manager"} --config ${configFile}";
        LoadCredential = [ "node-registration-psk:${cfg.registrationPskFile}" ];
        Restart = "on-failure";
        # 78: a bad node.yaml does not fix itself; 75 (config changed) must restart.
        RestartPreventExitStatus = 78;
        # SIGTERM to the node manager only; it stops its worker API and containers itself.
        KillMode = "mixed";
        RestartSec = 10;
        TimeoutStartSec = 600;
        TimeoutStopSec = 60;
        WatchdogSec = 60;
        StateDirectory = "cynode";
        StateDirectoryMode = "0700";
      }
      # Root only for the rootful Podman socket; everything else is taken away.
      // import ./hardening.nix
      // {
        ReadWritePaths = [
          "/var/lib/cynode"
          "/run/podman"
        ];
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
          "AF_NETLINK"
        ];
        SystemCallFilter = [ "@system-service" ];
      };
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ 12090 ];
  };
}
