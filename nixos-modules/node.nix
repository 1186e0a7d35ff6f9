# services.cynodeai.node: a worker node. The node manager registers with the orchestrator,
# starts the worker API (its child) and makes sure inference answers before it reports ready.
# The unit (ordering, credentials, restart policy, hardening, syscalls) comes from
# systemd/units.nix, the source of systemd/cynode-node-manager.service too.
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
  # Options left at null (unset) are not written. worker_api.binary stays unset: the node
  # manager starts the cynode-worker-api next to itself, and that one its sidecars.
  configFile = settingsFormat.generate "node.yaml" (
    lib.filterAttrsRecursive (_: v: v != null) ({ version = 1; } // cfg.settings)
  );
  stateDir = cfg.settings.storage.state_dir;
  podmanSocket = cfg.settings.sandbox.podman_socket;

  units = import ../systemd/units.nix {
    bindir = "${cfg.package}/bin";
    nodeConfig = "${configFile}";
    nodeCredentials = lib.filterAttrs (_: v: v != null) {
      node-registration-psk = cfg.registrationPskFile;
    };
    podmanUnit = "cynode-podman.socket";
    inherit podmanSocket;
    nodeStateDir = stateDir;
    killBin = "${pkgs.util-linux}/bin/kill";
  };
  toService = import ./units.nix lib;

  # What the node's containers need, for the node's own Podman service only (not host-wide).
  containersConf = (pkgs.formats.toml { }).generate "cynode-containers.conf" {
    containers.default_ulimits = cfg.containerUlimits;
  };

  required = name: value: {
    assertion = value != null;
    message = "services.cynodeai.node.${name} must be set.";
  };
in
{
  options.services.cynodeai.node = {
    enable = lib.mkEnableOption "a CyNodeAI worker node (node manager and worker API)";

    package = lib.mkOption {
      type = lib.types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.cynodeai;
      defaultText = lib.literalExpression "cynodeai.packages.\${system}.cynodeai";
      description = "The package providing `cynode-node-manager`, `cynode-worker-api` and their sidecars, side by side in `bin/`.";
    };

    settings = lib.mkOption {
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options = {
          orchestrator.url = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            example = "http://orchestrator.example.org:12082";
            description = "The orchestrator's control plane (required).";
          };
          node.id = lib.mkOption {
            type = lib.types.str;
            default = config.networking.hostName;
            defaultText = lib.literalExpression "config.networking.hostName";
            description = "The node's slug, unique among the orchestrator's nodes.";
          };
          worker_api.public_base_url = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            example = "http://worker-1.example.org:12090";
            description = "URL at which the orchestrator reaches this node's worker API (required).";
          };
          worker_api.listen_port = lib.mkOption {
            type = lib.types.port;
            default = 12090;
            description = "Port the worker API listens on.";
          };
          sandbox.podman_socket = lib.mkOption {
            type = lib.types.str;
            default = "/run/cynode-podman/podman.sock";
            description = "Socket of the node's own Podman API service (`cynode-podman.socket`).";
          };
          storage.state_dir = lib.mkOption {
            type = lib.types.str;
            default = "/var/lib/cynode/state";
            description = "Node-local state; made writable for the unit wherever it is.";
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
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "File holding the orchestrator's node registration pre-shared key (required).";
    };

    containerUlimits = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [
        "nofile=1024:1024"
        "nproc=1024:1024"
      ];
      description = ''
        `default_ulimits` of the containers the node creates (sandboxes, inference, pod infra
        containers), set only on the node's own Podman API service.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the worker API's port (`settings.worker_api.listen_port`) for the orchestrator.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      (required "settings.orchestrator.url" cfg.settings.orchestrator.url)
      {
        assertion = cfg.settings.worker_api.public_base_url != null;
        message = "services.cynodeai.node.settings.worker_api.public_base_url must be set: the orchestrator dispatches jobs there.";
      }
      (required "registrationPskFile" cfg.registrationPskFile)
    ];

    # Podman's package, policy and storage configuration; sandboxes are created through the
    # REST API of the node's own socket-activated Podman service below.
    virtualisation.podman.enable = true;

    # Every sandbox runs in a Podman `auto` user namespace (65536 ids each) taken from the
    # `containers` subordinate ranges in /etc/subuid and /etc/subgid (ARCHITECTURE.md).
    users.users.containers = {
      isSystemUser = true;
      group = "containers";
      subUidRanges = [ { startUid = 2147483647; count = 2147483648; } ];
      subGidRanges = [ { startGid = 2147483647; count = 2147483648; } ];
    };
    users.groups.containers = { };

    systemd.sockets.cynode-podman = {
      description = "Podman API socket for CyNodeAI sandboxes";
      wantedBy = [ "sockets.target" ];
      listenStreams = [ podmanSocket ];
      socketConfig = {
        SocketMode = "0600";
        DirectoryMode = "0700";
      };
    };
    systemd.services.cynode-podman = {
      description = "Podman API service for CyNodeAI sandboxes";
      requires = [ "cynode-podman.socket" ];
      after = [ "cynode-podman.socket" ];
      # containers.conf for these containers only; the host's Podman keeps its defaults.
      environment.CONTAINERS_CONF_OVERRIDE = "${containersConf}";
      serviceConfig = {
        Type = "exec";
        KillMode = "process";
        Delegate = true;
        ExecStart = "${lib.getExe config.virtualisation.podman.package} system service --time=0";
      };
    };

    systemd.tmpfiles.rules = lib.optional (!lib.hasPrefix "/var/lib/" stateDir) "d ${stateDir} 0700 root root -";

    systemd.services.cynode-node-manager = toService units.cynode-node-manager;

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [
      cfg.settings.worker_api.listen_port
    ];
  };
}
