# Evaluates both NixOS modules with lib.evalModules and stand-ins for the few NixOS options and
# pkgs attributes they touch, so the modules can be checked with nothing but nixpkgs' lib/
# (no nixpkgs checkout, no store writes):
#
#   nix-instantiate --eval --strict --json vm-tests/module-eval.nix --arg lib 'import <lib-dir>'
#
# Returns what it checked; any failed check throws with its name. The flake's `checks` run the
# same modules through the real nixosSystem (vm-tests/module-eval-nixos.nix).
{ lib }:
let
  inherit (lib) mkOption types;

  fakePackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };
  format = ext: {
    type = types.attrsOf types.anything;
    generate = name: _value: "/nix/store/00000000000000000000000000000000-${name}";
  };
  pkgs = {
    stdenv.hostPlatform.system = "x86_64-linux";
    util-linux = fakePackage "util-linux";
    formats = {
      toml = _: format "toml";
      yaml = _: format "yaml";
    };
  };
  self.packages.x86_64-linux.cynodeai = fakePackage "cynodeai";

  listOpt = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };
  # The NixOS options the modules set, with NixOS's merge behaviour (lists concatenate).
  standIns = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      networking.hostName = mkOption {
        type = types.str;
        default = "worker-1";
      };
      networking.firewall.allowedTCPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      services.postgresql = mkOption {
        type = types.attrsOf types.anything;
        default = { };
      };
      virtualisation.podman.enable = mkOption {
        type = types.bool;
        default = false;
      };
      virtualisation.podman.package = mkOption {
        type = types.package;
        default = fakePackage "podman";
      };
      users.users = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule {
            options = {
              isSystemUser = mkOption {
                type = types.bool;
                default = false;
              };
              group = mkOption {
                type = types.str;
                default = "";
              };
              subUidRanges = mkOption {
                type = types.listOf (types.attrsOf types.int);
                default = [ ];
              };
              subGidRanges = mkOption {
                type = types.listOf (types.attrsOf types.int);
                default = [ ];
              };
            };
          }
        );
      };
      users.groups = mkOption {
        type = types.attrsOf (types.attrsOf types.anything);
        default = { };
      };
      systemd.sockets = mkOption {
        type = types.attrsOf (types.attrsOf types.anything);
        default = { };
      };
      systemd.tmpfiles.rules = listOpt;
      systemd.services = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule {
            options = {
              description = mkOption { type = types.str; };
              documentation = listOpt;
              after = listOpt;
              wants = listOpt;
              requires = listOpt;
              partOf = listOpt;
              wantedBy = listOpt;
              unitConfig = mkOption {
                type = types.attrsOf types.anything;
                default = { };
              };
              serviceConfig = mkOption {
                type = types.attrsOf types.anything;
                default = { };
              };
              environment = mkOption {
                type = types.attrsOf types.str;
                default = { };
              };
            };
          }
        );
      };
    };
  };

  eval =
    config:
    (lib.evalModules {
      specialArgs = { inherit pkgs; };
      modules = [
        standIns
        (import ../nixos-modules/orchestrator.nix self)
        (import ../nixos-modules/node.nix self)
        config
      ];
    }).config;

  failed = cfg: map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);

  good = eval {
    services.cynodeai.orchestrator = {
      enable = true;
      openFirewall = true;
      jwtSecretFile = "/run/keys/jwt";
      nodeRegistrationPskFile = "/run/keys/psk";
      bootstrapAdminPasswordFile = "/run/keys/admin";
      workerTokenKeyFile = "/run/keys/worker-token-key";
      settings.public_url = "http://orchestrator:12082";
      settings.user_gateway_listen_addr = "0.0.0.0:8080";
    };
    services.cynodeai.node = {
      enable = true;
      openFirewall = true;
      registrationPskFile = "/run/keys/psk";
      settings.orchestrator.url = "http://orchestrator:12082";
      settings.worker_api.public_base_url = "http://worker-1:12090";
      settings.worker_api.listen_port = 12091;
      settings.storage.state_dir = "/srv/cynode";
    };
    # Another module adds ordering: it must add to the list, not replace it.
    systemd.services.cynode-user-gateway.after = [ "extra.service" ];
  };

  bad = eval {
    services.cynodeai.orchestrator.enable = true;
    services.cynodeai.node.enable = true;
  };

  # The same source with the module's paths: what the module rendered must be exactly it.
  source = import ../systemd/units.nix {
    bindir = "/nix/store/00000000000000000000000000000000-cynodeai/bin";
    nodeConfig = "/nix/store/00000000000000000000000000000000-node.yaml";
    nodeCredentials.node-registration-psk = "/run/keys/psk";
    podmanUnit = "cynode-podman.socket";
    podmanSocket = "/run/cynode-podman/podman.sock";
    nodeStateDir = "/srv/cynode";
    killBin = "/nix/store/00000000000000000000000000000000-util-linux/bin/kill";
  };

  gw = good.systemd.services.cynode-user-gateway;
  cp = good.systemd.services.cynode-control-plane;
  nm = good.systemd.services.cynode-node-manager;
  hasAll = xs: ys: lib.all (y: lib.elem y xs) ys;
  badMessages = failed bad;
  checks = {
    "no assertion fails for a complete configuration" = failed good == [ ];
    "gateway After= keeps network-online, postgresql.target, control plane and additions" =
      hasAll gw.after [
        "network-online.target"
        "postgresql.target"
        "cynode-control-plane.service"
        "extra.service"
      ];
    "gateway Wants= keeps network-online" = hasAll gw.wants [ "network-online.target" ];
    "orchestrator requires postgresql.target" = hasAll cp.requires [ "postgresql.target" ];
    "gateway gets no node registration PSK" =
      !(lib.any (lib.hasPrefix "node-registration-psk:") gw.serviceConfig.LoadCredential);
    "control plane gets the PSK" =
      lib.elem "node-registration-psk:/run/keys/psk" cp.serviceConfig.LoadCredential;
    "node manager's serviceConfig is units.nix's" =
      nm.serviceConfig == removeAttrs source.cynode-node-manager.Service [ "Environment" ];
    "node manager's environment is units.nix's" =
      nm.environment == source.cynode-node-manager.Service.Environment;
    "node manager runs without capabilities, with the deny list and Landlock" =
      nm.serviceConfig.CapabilityBoundingSet == ""
      && lib.any (lib.hasInfix "landlock_restrict_self") nm.serviceConfig.SystemCallFilter
      && lib.any (lib.hasPrefix "~@privileged") nm.serviceConfig.SystemCallFilter;
    "moved state dir is writable and created" =
      nm.serviceConfig.ReadWritePaths == [ "/srv/cynode" ]
      && good.systemd.tmpfiles.rules == [ "d /srv/cynode 0700 root root -" ];
    "firewall follows the listen addresses" =
      lib.sort lib.lessThan good.networking.firewall.allowedTCPPorts == [
        8080
        12082
        12091
      ];
    "ulimits only on the node's own Podman service" =
      good.systemd.services.cynode-podman.environment ? CONTAINERS_CONF_OVERRIDE;
    # Both call worker APIs: the dispatcher, and the gateway for chat and cancel.
    "both orchestrator units get the worker token key" = lib.all (
      unit: lib.elem "worker-token-key:/run/keys/worker-token-key" unit.serviceConfig.LoadCredential
    ) [ cp gw ];
    "sandboxes get subordinate ids for their user namespaces" =
      good.users.users.containers.subUidRanges != [ ]
      && good.users.users.containers.subGidRanges != [ ]
      && good.users.groups ? containers;
    "node manager requires the node's Podman socket" = nm.requires == [ "cynode-podman.socket" ];
    "missing settings and secret files name their option" = lib.all (o: lib.any (lib.hasInfix o) badMessages) [
      "services.cynodeai.orchestrator.settings.public_url"
      "services.cynodeai.orchestrator.jwtSecretFile"
      "services.cynodeai.orchestrator.nodeRegistrationPskFile"
      "services.cynodeai.orchestrator.bootstrapAdminPasswordFile"
      "services.cynodeai.node.settings.orchestrator.url"
      "services.cynodeai.node.settings.worker_api.public_base_url"
      "services.cynodeai.node.registrationPskFile"
    ];
  };
  failures = lib.attrNames (lib.filterAttrs (_: ok: !ok) checks);
in
if failures == [ ] then
  {
    passed = lib.attrNames checks;
    assertionMessagesWhenUnset = badMessages;
    gatewayAfter = gw.after;
    nodeManagerServiceConfig = nm.serviceConfig;
  }
else
  throw "module-eval: failed: ${lib.concatStringsSep "; " failures}"
