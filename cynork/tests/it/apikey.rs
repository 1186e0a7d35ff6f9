//! `cynork apikey` and API keys as cynork's credential, with the real `cynork` binary against
//! the real gateway (`cynode-orchestrator all` on a fresh PostgreSQL database).

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::{Cynork, Stack};

const AUTH: i32 = 3;
const NOT_FOUND: i32 = 4;
const REJECTED: i32 = 6;

/// The value of `key=` in a `key=value` line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[tokio::test]
async fn create_use_list_and_revoke_keys() {
    let stack = Stack::start().await;
    let cli = Cynork::new(&stack.gateway);
    cli.login_admin().await;

    // Created with a login session: printed once, with a warning on stderr.
    let created = cli
        .run(&[
            "apikey",
            "create",
            "--name",
            "ci",
            "--expires-in-days",
            "30",
        ])
        .await;
    let line = created.ok().trim().to_owned();
    assert!(
        created.stderr.contains("cannot be shown again"),
        "{created:?}"
    );
    let key = field(&line, "key").to_owned();
    let id = field(&line, "id").to_owned();
    assert!(key.starts_with("cyn_") && key.len() == 68, "{line}");
    assert_eq!(field(&line, "name"), "ci");
    assert_ne!(field(&line, "expires_at"), "never");
    let other = cli
        .run(&["apikey", "create", "--name", "other key", "-o", "json"])
        .await
        .json();
    assert!(other["key"].as_str().unwrap().starts_with("cyn_"));
    assert!(other.get("expires_at").is_none(), "{other}");

    // The list tells keys apart without showing them.
    let listed = cli.run(&["apikey", "list"]).await;
    let lines: Vec<&str> = listed.ok().lines().collect();
    assert_eq!(lines.len(), 2, "{listed:?}");
    assert!(lines[0].contains(r#"name="other key""#), "{listed:?}");
    assert_eq!(field(lines[1], "id"), id);
    assert_eq!(field(lines[1], "status"), "active");
    assert_eq!(field(lines[1], "last_used_at"), "never");
    let hint = field(lines[1], "hint");
    assert!(
        hint.starts_with(&key[..10]) && hint.ends_with(&key[64..]),
        "{hint}"
    );
    assert!(!listed.stdout.contains(&key[10..64]), "{listed:?}");
    let json = cli.run(&["apikey", "list", "-o", "json"]).await.json();
    assert_eq!(json["api_keys"].as_array().unwrap().len(), 2);

    // Without logging in: the key from CYNORK_API_KEY...
    let by_env = Cynork::new(&stack.gateway);
    let env = [("CYNORK_API_KEY", key.as_str())];
    let who = by_env.run_with(&["auth", "whoami"], None, &env).await;
    assert!(who.ok().contains("user=admin"), "{who:?}");
    assert!(by_env.run_with(&["task", "list"], None, &env).await.code == 0);
    let listed = cli.run(&["apikey", "list", "-o", "json"]).await.json();
    assert!(
        listed["api_keys"][1]["last_used_at"].is_string(),
        "{listed}"
    );

    // ...or from the file the config's api_key_file names (relative to the config).
    let by_file = Cynork::new(&stack.gateway);
    let dir = by_file.config_file().parent().unwrap().to_owned();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("admin.key"), format!("{key}\n")).unwrap();
    std::fs::set_permissions(
        dir.join("admin.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(by_file.config_file(), "api_key_file: admin.key\n").unwrap();
    let who = by_file.run(&["auth", "whoami"]).await;
    assert!(who.ok().contains("user=admin"), "{who:?}");
    assert!(!who.stderr.contains("warning"), "{who:?}");

    // Nothing at all: the auth exit code, naming both ways in.
    let nobody = Cynork::new(&stack.gateway).run(&["auth", "whoami"]).await;
    assert_eq!(nobody.code, AUTH, "{nobody:?}");
    assert!(nobody.stderr.contains("CYNORK_API_KEY"), "{nobody:?}");

    // A key cannot create keys; logout with a key revokes nothing and says so.
    let minted = by_env
        .run_with(&["apikey", "create", "--name", "child"], None, &env)
        .await;
    assert_eq!(minted.code, AUTH, "{minted:?}");
    assert!(minted.stderr.contains("log in"), "{minted:?}");
    let out = by_env.run_with(&["auth", "logout"], None, &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("apikey revoke"), "{out:?}");
    assert_eq!(
        by_env.run_with(&["auth", "whoami"], None, &env).await.code,
        0
    );
    let refresh = by_env.run_with(&["auth", "refresh"], None, &env).await;
    assert_eq!(refresh.code, 2, "{refresh:?}");

    // Bad input is the gateway's 400, naming the field.
    for name in ["", " ", &"n".repeat(129)] {
        let run = cli.run(&["apikey", "create", "--name", name]).await;
        assert_eq!(run.code, REJECTED, "{run:?}");
        assert!(run.stderr.contains("name"), "{run:?}");
    }

    // Revoking asks first; declining (EOF) changes nothing.
    let declined = cli.run(&["apikey", "revoke", &id]).await;
    assert_eq!(declined.code, 0);
    assert!(declined.stderr.contains(&format!("Revoke API key {id}?")));
    assert_eq!(
        by_env.run_with(&["auth", "whoami"], None, &env).await.code,
        0
    );
    let revoked = cli.run(&["apikey", "revoke", &id, "-y"]).await;
    assert_eq!(revoked.ok().trim(), format!("id={id} revoked=true"));
    let again = cli
        .run(&["apikey", "revoke", &id, "-y", "-o", "json"])
        .await;
    assert_eq!(again.json()["revoked"], true);
    let unknown = cli
        .run(&["apikey", "revoke", "-y", &uuid::Uuid::new_v4().to_string()])
        .await;
    assert_eq!(unknown.code, NOT_FOUND, "{unknown:?}");

    // At once, whichever way cynork found the key; the messages say what to check.
    let refused = by_env.run_with(&["auth", "whoami"], None, &env).await;
    assert_eq!(refused.code, AUTH, "{refused:?}");
    assert!(refused.stderr.contains("revoked"), "{refused:?}");
    assert!(refused.stderr.contains("CYNORK_API_KEY"), "{refused:?}");
    let refused = by_file.run(&["task", "list"]).await;
    assert_eq!(refused.code, AUTH, "{refused:?}");
    assert!(refused.stderr.contains("admin.key"), "{refused:?}");
    let listed = cli.run(&["apikey", "list"]).await;
    let line = listed.ok().lines().nth(1).unwrap().to_owned();
    assert_eq!(field(&line, "status"), "revoked");
    field(&line, "revoked_at");

    // The key went to no log or error: only `apikey create` ever printed it.
    for run in [&who, &nobody, &minted, &out, &refused, &listed] {
        assert!(
            !run.stdout.contains(&key) && !run.stderr.contains(&key),
            "{run:?}"
        );
    }
    let log = stack.log();
    assert!(
        log.contains("API key created"),
        "the log is not the right one"
    );
    assert!(!log.contains(&key[4..]), "the orchestrator logged the key");
}

#[tokio::test]
async fn usage_shows_totals_per_model_key_and_day() {
    let stack = Stack::start().await;
    let cli = Cynork::new(&stack.gateway);
    cli.login_admin().await;
    let key = cli
        .run(&["apikey", "create", "--name", "webui", "-o", "json"])
        .await
        .json();
    stack
        .execute(&format!(
            "INSERT INTO token_usage (id, user_id, api_key_id, model, prompt_tokens, completion_tokens, created_at)
             SELECT gen_random_uuid(), u.id, k, m, p, c, t::timestamptz FROM users u,
               (VALUES (NULL::uuid, 'm1', 10, 5, '2026-03-01T08:00:00Z'),
                       ('{}'::uuid, 'm2', 100, 50, '2026-03-02T23:59:59Z'),
                       ('{}'::uuid, 'm1', 1, 2, '2026-03-02T00:00:00Z')) AS x(k, m, p, c, t)
             WHERE u.handle = 'admin'",
            key["id"].as_str().unwrap(),
            key["id"].as_str().unwrap()
        ))
        .await;

    let out = cli.run(&["usage"]).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    let want = [
        "total=all requests=3 prompt_tokens=111 completion_tokens=57 total_tokens=168",
        "model=m1 requests=2 prompt_tokens=11 completion_tokens=7 total_tokens=18",
        "model=m2 requests=1 prompt_tokens=100 completion_tokens=50 total_tokens=150",
        "key=session requests=1 prompt_tokens=10 completion_tokens=5 total_tokens=15",
        "key=webui requests=2 prompt_tokens=101 completion_tokens=52 total_tokens=153",
        "day=2026-03-01 requests=1 prompt_tokens=10 completion_tokens=5 total_tokens=15",
        "day=2026-03-02 requests=2 prompt_tokens=101 completion_tokens=52 total_tokens=153",
    ];
    assert_eq!(lines, want, "{out:?}");

    let json = cli
        .run(&["usage", "--since", "2026-03-02T00:00:00Z", "-o", "json"])
        .await
        .json();
    assert_eq!(json["total"]["requests"], 2);
    assert_eq!(json["by_day"].as_array().unwrap().len(), 1);
    assert_eq!(json["by_day"][0]["day"], "2026-03-02");

    // A time that is not RFC 3339 is the user's mistake: nothing is sent.
    let bad = cli.run(&["usage", "--since", "yesterday"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("--since"), "{bad:?}");
}
