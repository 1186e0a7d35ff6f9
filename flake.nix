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
        # The web console: static files built from console/package-lock.json (importNpmLock
        # fetches each locked package by its integrity hash; no hash is computed here).
        console = pkgs.buildNpmPackage {
          pname = "cynodeai-console";
          inherit (cargoToml.workspace.package) version;
          src = pkgs.lib.cleanSourceWith {
            src = ./console;
            filter = path: type: !(builtins.elem (baseNameOf path) [ "node_modules" "dist" ]);
          };
          npmDeps = pkgs.importNpmLock { npmRoot = ./console; };
          npmConfigHook = pkgs.importNpmLock.npmConfigHook;
          installPhase = ''
            runHook preInstall
            mkdir -p $out/share/cynodeai
            cp -r dist $out/share/cynodeai/console
            runHook postInstall
          '';
        };
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
                "console"
                "node_modules"
              ]);
          };
          cargoLock.lockFile = ./Cargo.lock;
          # Every binary of the workspace, side by side in bin/: the node manager starts the
          # cynode-worker-api next to itself, and the worker API its sidecars.
          cargoBuildFlags = [
            "--workspace"
            "--bins"
          ];
          # The tests need a live PostgreSQL, Podman socket and inference server; the NixOS VM
          # tests in `checks` exercise the built binaries instead.
          doCheck = false;
          # The orchestrator serves the console from share/cynodeai/console beside its bin/.
          postInstall = ''
            mkdir -p $out/share/cynodeai
            cp -r ${self.packages.${pkgs.stdenv.hostPlatform.system}.console}/share/cynodeai/console \
              $out/share/cynodeai/console
          '';
          meta = {
            description = "CyNodeAI orchestrator, node agents, the cynork CLI and the web console";
            license = pkgs.lib.licenses.asl20;
            mainProgram = "cynork";
            platforms = pkgs.lib.platforms.linux;
          };
        };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.cynodeai;
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

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);

      checks = forAllSystems (
        pkgs:
        let
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.cynodeai;
        in
        {
          # No VM: both modules through nixpkgs' lib.evalModules with stand-ins, then through the
          # real nixosSystem with example settings (assertions, rendered unit text).
          module-eval = pkgs.writeText "module-eval.json" (
            builtins.toJSON (import ./vm-tests/module-eval.nix { inherit (nixpkgs) lib; })
          );
          module-eval-nixos = import ./vm-tests/module-eval-nixos.nix { inherit pkgs self nixpkgs; };
          # Lints through the package's own vendored dependencies.
          clippy = package.overrideAttrs (old: {
            pname = "cynodeai-clippy";
            nativeBuildInputs = old.nativeBuildInputs ++ [ pkgs.clippy ];
            buildPhase = "cargo clippy --workspace --all-targets --offline -- -D warnings";
            installPhase = "touch $out";
          });
          fmt = package.overrideAttrs (old: {
            pname = "cynodeai-fmt";
            nativeBuildInputs = old.nativeBuildInputs ++ [ pkgs.rustfmt ];
            buildPhase = "cargo fmt --all --check";
            installPhase = "touch $out";
          });
          happy-path = import ./vm-tests/happy-path.nix { inherit pkgs self; };
        }
      );

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
