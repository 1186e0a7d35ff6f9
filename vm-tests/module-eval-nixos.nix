# Both modules in a real NixOS evaluation (no VM, no build of the system): example settings
# must evaluate with no failed assertion, and the rendered unit texts are the check's output.
# A configuration that lacks its secrets must fail with messages naming the options.
{
  pkgs,
  self,
  nixpkgs,
}:
let
  inherit (pkgs) lib;
  system = pkgs.stdenv.hostPlatform.system;
  evalWith =
    settings:
    (nixpkgs.lib.nixosSystem {
      inherit system;
      modules = [
        self.nixosModules.default
        {
          boot.isContainer = true;
          system.stateVersion = "25.11";
          networking.hostName = "worker-1";
        }
        settings
      ];
    }).config;
  failed = cfg: map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);

  good = evalWith {
    services.cynodeai.orchestrator = {
      enable = true;
      openFirewall = true;
      jwtSecretFile = "/run/keys/jwt";
      nodeRegistrationPskFile = "/run/keys/psk";
      bootstrapAdminPasswordFile = "/run/keys/admin";
      settings.public_url = "http://orchestrator:12082";
    };
    services.cynodeai.node = {
      enable = true;
      openFirewall = true;
      registrationPskFile = "/run/keys/psk";
      settings.orchestrator.url = "http://orchestrator:12082";
      settings.worker_api.public_base_url = "http://worker-1:12090";
    };
  };
  bad = evalWith {
    services.cynodeai.orchestrator.enable = true;
    services.cynodeai.node.enable = true;
  };
  unit = name: builtins.unsafeDiscardStringContext good.systemd.units.${name}.text;
  gatewayText = unit "cynode-user-gateway.service";
in
assert lib.assertMsg (failed good == [ ]) "module-eval-nixos: ${toString (failed good)}";
assert lib.assertMsg (lib.length (failed bad) == 7) "module-eval-nixos: ${toString (failed bad)}";
assert lib.assertMsg (
  lib.hasInfix "network-online.target" gatewayText
  && lib.hasInfix "postgresql.target" gatewayText
  && !(lib.hasInfix "node-registration-psk" gatewayText)
) gatewayText;
pkgs.writeText "cynodeai-units.txt" (
  lib.concatMapStrings (n: "### ${n}\n${unit n}\n") [
    "cynode-control-plane.service"
    "cynode-user-gateway.service"
    "cynode-node-manager.service"
    "cynode-podman.service"
    "cynode-podman.socket"
  ]
)
