{
  description = "CyNodeAI: self-hosted AI work on your own machines, in locked-down sandboxes";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);
    in
    {
      packages = forAllSystems (pkgs: {
        # One derivation for the whole workspace: every binary shares one dependency build.
        cynodeai = pkgs.rustPlatform.buildRustPackage {
          pname = "cynodeai";
          inherit (cargoToml.workspace.package) version;
          src = pkgs.lib.cleanSourceWith {
            src = ./.;
            filter =
              path: type:
              !(builtins.elem (baseNameOf path) [
                "target"
                "vm-tests"
                "nixos-modules"
              ]);
          };
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [
            "--bin"
            "cynode-orchestrator"
            "--bin"
            "cynode-node-manager"
            "--bin"
            "cynode-worker-api"
            "--bin"
            "cynork"
          ];
          # The tests need a live PostgreSQL, Podman socket and inference server; the NixOS VM
          # tests in `checks` exercise the built binaries instead.
          doCheck = false;
          meta = {
            description = "CyNodeAI orchestrator, node agents and the cynork CLI";
            license = pkgs.lib.licenses.asl20;
            mainProgram = "cynork";
            platforms = pkgs.lib.platforms.linux;
          };
        };
        default = self.packages.${pkgs.system}.cynodeai;
      });

      nixosModules = {
        orchestrator = import ./nixos-modules/orchestrator.nix self;
        node = import ./nixos-modules/node.nix self;
        default = {
          imports = [
            self.nixosModules.orchestrator
            self.nixosModules.node
          ];
        };
      };

      checks = forAllSystems (pkgs: {
        happy-path = import ./vm-tests/happy-path.nix { inherit pkgs self; };
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            just
            podman
            postgresql
            wrk
            hyperfine
          ];
        };
      });
    };
}
