//! Teams through the real `cynork` binary against the real gateway: users, groups, projects,
//! role bindings, the active project, access rules and the access audit. Each person has a
//! cynork config directory of their own, as on separate machines.

use crate::common;

use common::{Cynork, Run, Stack};
use cynode_contracts::routes;
use cynode_e2e::tmux::Tmux;
use serde_json::{Value, json};

use crate::tty::pane_command;

const AUTH: i32 = 3;
const NOT_FOUND: i32 = 4;
const CONFLICT: i32 = 5;

const ALICE_PASSWORD: &str = "first-secret-0001";
const BOB_PASSWORD: &str = "second-secret-0002";
const CAROL_PASSWORD: &str = "third-secret-0003";

/// The value of `key=` in a `key=value` line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Asserts the exit code, with the whole run in the message.
fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, code, "{run:?}");
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout on failure: {run:?}"
    );
    assert_eq!(run.stderr.lines().count(), 1, "one error line: {run:?}");
}

async fn create_user(admin: &Cynork, handle: &str, password: &str) -> String {
    let run = admin
        .run_with(
            &["user", "create", handle, "--password-stdin"],
            Some(&format!("{password}\n")),
            &[],
        )
        .await;
    let line = run.ok().trim().to_owned();
    assert_eq!(field(&line, "handle"), handle, "{line}");
    assert_eq!(field(&line, "active"), "true", "{line}");
    field(&line, "user_id").to_owned()
}

/// A cynork of `handle`'s own (own config directory), logged in.
async fn logged_in(stack: &Stack, handle: &str, password: &str) -> Cynork {
    let cli = Cynork::new(&stack.gateway);
    let run = cli
        .run_with(
            &["auth", "login", "-u", handle, "--password-stdin"],
            Some(&format!("{password}\n")),
            &[],
        )
        .await;
    assert_eq!(
        run.ok().trim(),
        format!("logged_in=true user={handle}"),
        "{run:?}"
    );
    cli
}

/// The access audit as JSON events, newest first.
async fn audit_events(admin: &Cynork, extra: &[&str]) -> Vec<Value> {
    let args = [&["audit", "list", "-l", "200", "-o", "json"][..], extra].concat();
    let page = admin.run(&args).await.json();
    page["events"].as_array().expect("events").clone()
}

#[tokio::test]
async fn a_team_shares_a_project_through_a_group_and_roles() {
    let stack = Stack::start().await;
    let admin = Cynork::new(&stack.gateway);
    admin.login_admin().await;

    // alice's password is typed at the prompt, twice, and never shows.
    let tmux = Tmux::start(&pane_command(
        &admin,
        "user create alice --display-name 'Alice L'",
    ));
    tmux.wait_for("the password prompt", |s| s.contains("Password:"))
        .await;
    tmux.type_line(ALICE_PASSWORD);
    tmux.wait_for("the second prompt", |s| s.contains("Password (again):"))
        .await;
    tmux.type_line(ALICE_PASSWORD);
    let screen = tmux
        .wait_for("the exit code", |s| s.contains("EXIT="))
        .await;
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains(r#"handle=alice active=true groups=- display_name="Alice L""#),
        "{screen}"
    );
    assert!(
        !screen.contains(ALICE_PASSWORD),
        "the password was echoed:\n{screen}"
    );
    drop(tmux);
    let bob_id = create_user(&admin, "bob", BOB_PASSWORD).await;
    create_user(&admin, "carol", CAROL_PASSWORD).await;

    let group = admin.run(&["group", "create", "ml"]).await;
    assert!(group.ok().contains(" slug=ml "), "{group:?}");
    let added = admin.run(&["group", "add", "ml", "alice"]).await;
    assert_eq!(added.ok().trim(), "group=ml user=alice added=true");
    let members = admin.run(&["group", "members", "ml"]).await;
    assert_eq!(members.ok().lines().count(), 1, "{members:?}");
    assert_eq!(field(members.ok(), "handle"), "alice");
    let alice = admin.run(&["user", "get", "alice"]).await;
    assert_eq!(field(alice.ok(), "groups"), "ml", "{alice:?}");

    let created = admin
        .run(&[
            "project",
            "create",
            "--slug",
            "vision",
            "--title",
            "Computer vision",
        ])
        .await;
    let line = created.ok().trim().to_owned();
    let project_id = field(&line, "project_id").to_owned();
    assert_eq!(field(&line, "slug"), "vision");

    for (role, flag, subject) in [("member", "--group", "ml"), ("viewer", "--user", "bob")] {
        let granted = admin
            .run(&[
                "project", "rbac", "grant", "vision", "--role", role, flag, subject,
            ])
            .await;
        let line = granted.ok().trim();
        assert!(
            line.starts_with("binding_id=")
                && line.contains(&format!(
                    " scope=project scope_id={project_id} role={role} "
                )),
            "{granted:?}"
        );
        assert!(
            line.ends_with(&format!(" subject={subject}")),
            "{granted:?}"
        );
    }
    let bindings = admin.run(&["project", "rbac", "list", "vision"]).await;
    let rows: Vec<Vec<&str>> = bindings
        .ok()
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(
        rows[0],
        ["binding_id", "role", "subject_type", "subject", "scope"]
    );
    let scope = format!("project:{project_id}");
    let mut granted: Vec<[&str; 4]> = rows[1..]
        .iter()
        .map(|r| [r[1], r[2], r[3], r[4]])
        .filter(|r| r[0] != "owner")
        .collect();
    granted.sort();
    assert_eq!(
        granted,
        [
            ["member", "group", "ml", scope.as_str()],
            ["viewer", "user", "bob", scope.as_str()]
        ],
        "{bindings:?}"
    );

    // alice, in her own config, makes vision her active project: her task lands there.
    let alice = logged_in(&stack, "alice", ALICE_PASSWORD).await;
    let set = alice.run(&["project", "set", "vision"]).await;
    assert_eq!(
        set.ok().trim(),
        format!("active_project={project_id} slug=vision")
    );
    // Saved next to the session (the file holds tokens: only the one key is shown).
    let saved = |cli: &Cynork| {
        let text = std::fs::read_to_string(cli.config_file()).unwrap();
        let config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        config["active_project"].as_str().map(str::to_owned)
    };
    assert_eq!(saved(&alice).as_deref(), Some(project_id.as_str()));
    let task = alice
        .run(&[
            "task",
            "create",
            "--command",
            "echo shared",
            "--name",
            "shared",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(task["project_id"], json!(project_id), "{task}");
    assert_eq!(task["creator"], "alice", "{task}");
    let task_id = task["id"].as_str().unwrap().to_owned();

    // bob, a viewer, sees it and who made it, but may not cancel it.
    let bob = logged_in(&stack, "bob", BOB_PASSWORD).await;
    let listed = bob.run(&["task", "list"]).await;
    let line = listed
        .ok()
        .lines()
        .find(|l| l.contains(&task_id))
        .unwrap_or_else(|| panic!("bob does not see alice's task: {listed:?}"));
    assert_eq!(field(line, "creator"), "alice", "{line}");
    let shown = bob.run(&["task", "get", &task_id]).await;
    assert!(
        shown
            .ok()
            .contains(&format!("creator=alice project_id={project_id}")),
        "{shown:?}"
    );
    let cancel = bob.run(&["task", "cancel", &task_id, "-y"]).await;
    assert_code(&cancel, AUTH);
    assert!(
        !cancel.stderr.contains("auth login"),
        "a refusal is not a login problem: {cancel:?}"
    );
    // His active project goes with chat too (OpenAI-Project), where a viewer may not talk.
    bob.run(&["project", "set", "vision"]).await.ok();
    let chat = bob.run(&["chat", "-m", "hello"]).await;
    assert_code(&chat, AUTH);
    assert!(chat.stderr.contains("chat.use is not allowed"), "{chat:?}");

    // carol has no role in vision: for her, neither the project nor its task exists.
    let carol = logged_in(&stack, "carol", CAROL_PASSWORD).await;
    assert_code(&carol.run(&["task", "get", &task_id]).await, NOT_FOUND);
    assert_code(&carol.run(&["project", "get", "vision"]).await, NOT_FOUND);
    assert_code(&carol.run(&["project", "set", "vision"]).await, NOT_FOUND);
    assert_eq!(saved(&carol), None, "a refused project set saves nothing");

    // Out of the group, alice loses the project, by slug, by id and as her active project.
    let removed = admin.run(&["group", "remove", "ml", "alice"]).await;
    assert_eq!(removed.ok().trim(), "group=ml user=alice removed=true");
    let by_slug = alice
        .run(&["task", "create", "-p", "more", "--project-id", "vision"])
        .await;
    assert_code(&by_slug, NOT_FOUND);
    let by_id = alice
        .run(&["task", "create", "-p", "more", "--project-id", &project_id])
        .await;
    assert_code(&by_id, NOT_FOUND);
    let by_default = alice.run(&["task", "create", "--command", "true"]).await;
    assert_code(&by_default, NOT_FOUND);
    assert!(
        by_default.stderr.contains("cynork project set none"),
        "{by_default:?}"
    );
    assert_eq!(
        alice.run(&["project", "set", "none"]).await.ok().trim(),
        "active_project=none"
    );
    assert_eq!(saved(&alice), None);
    let own = alice
        .run(&["task", "create", "--command", "true", "-o", "json"])
        .await
        .json();
    assert_ne!(own["project_id"], json!(project_id), "{own}");

    // Disabled, bob is out: his saved session and a new login are both refused.
    let disabled = admin.run(&["user", "disable", "bob"]).await;
    assert_eq!(field(disabled.ok(), "active"), "false", "{disabled:?}");
    assert_code(&bob.run(&["task", "list"]).await, AUTH);
    let relogin = bob
        .run_with(
            &["auth", "login", "-u", "bob", "--password-stdin"],
            Some(&format!("{BOB_PASSWORD}\n")),
            &[],
        )
        .await;
    assert_code(&relogin, AUTH);

    // The audit has all of it: the grant, the membership changes, the refused cancel, the
    // disable. Newest first.
    let table = admin.run(&["audit", "list"]).await;
    assert_eq!(
        table.ok().lines().next(),
        Some("event_id\tts\tactor_id\taction\tresource_type\tresource_id\tdecision"),
        "{table:?}"
    );
    let events = audit_events(&admin, &[]).await;
    let find = |action: &str, resource_id: &str| {
        events
            .iter()
            .find(|e| e["action"] == action && e["resource_id"] == resource_id)
            .unwrap_or_else(|| panic!("no {action} of {resource_id} in the audit: {events:#?}"))
            .clone()
    };
    let grant = find(
        "rbac.grant",
        &format!("member group:ml at project:{project_id}"),
    );
    assert_eq!(grant["actor_handle"], "admin", "{grant}");
    assert_eq!(grant["decision"], "allow", "{grant}");
    for action in ["group.member.add", "group.member.remove"] {
        let change = find(action, "ml/alice");
        assert_eq!(change["resource_type"], "group", "{change}");
        assert_eq!(change["decision"], "allow", "{change}");
    }
    let denied = find("task.cancel", &task_id);
    assert_eq!(denied["decision"], "deny", "{denied}");
    assert_eq!(denied["actor_id"], json!(bob_id), "{denied}");
    let disable = find("user.disable", "bob");
    assert_eq!(disable["resource_type"], "user", "{disable}");
    assert_eq!(disable["actor_handle"], "admin", "{disable}");
    // Newest first: the disable came after the refused cancel.
    let position = |id: &Value| events.iter().position(|e| e["id"] == *id).unwrap();
    assert!(position(&disable["id"]) < position(&denied["id"]));
    let grants = audit_events(&admin, &["--action", "rbac.grant"]).await;
    assert_eq!(grants.len(), 2, "{grants:#?}");
    let only_denied = audit_events(&admin, &["--decision", "deny"]).await;
    assert!(!only_denied.is_empty());
    assert!(
        only_denied.iter().all(|e| e["decision"] == "deny"),
        "{only_denied:#?}"
    );
    let one = admin
        .run(&["audit", "get", denied["id"].as_str().unwrap()])
        .await;
    assert!(one.ok().contains(" actor=bob "), "{one:?}");
    assert_eq!(field(one.ok(), "decision"), "deny");
}

#[tokio::test]
async fn bad_team_input_fails_clearly_and_changes_nothing() {
    let stack = Stack::start().await;
    let admin = Cynork::new(&stack.gateway);
    admin.login_admin().await;
    create_user(&admin, "bob", BOB_PASSWORD).await;
    admin.run(&["group", "create", "ml"]).await.ok();
    admin
        .run(&["project", "create", "--slug", "vision", "--title", "V"])
        .await
        .ok();

    let again = admin
        .run_with(
            &["user", "create", "bob", "--password-stdin"],
            Some(&format!("{BOB_PASSWORD}x\n")),
            &[],
        )
        .await;
    assert_code(&again, CONFLICT);
    assert!(again.stderr.contains("bob"), "{again:?}");
    assert!(!again.stderr.contains(BOB_PASSWORD), "{again:?}");
    let users = admin.run(&["user", "list", "--q", "bob"]).await;
    assert_eq!(users.ok().lines().count(), 1, "{users:?}");

    for args in [
        &["user", "get", "nobody"][..],
        &["user", "disable", "nobody"],
        &["group", "get", "nope"],
        &["group", "add", "nope", "bob"],
        &["group", "add", "ml", "nobody"],
        &["group", "members", "nope"],
        &["project", "get", "nope"],
        &["project", "set", "nope"],
        &["project", "rbac", "list", "nope"],
        &[
            "project", "rbac", "grant", "nope", "--role", "member", "--user", "bob",
        ],
        &[
            "project", "rbac", "grant", "vision", "--role", "member", "--user", "nobody",
        ],
        &[
            "project", "rbac", "grant", "vision", "--role", "member", "--group", "nope",
        ],
        &["task", "create", "hi", "--project-id", "nope"],
    ] {
        let run = admin.run(args).await;
        assert_code(&run, NOT_FOUND);
        assert!(
            run.stderr.contains("nope") || run.stderr.contains("nobody"),
            "the message names what is missing: {args:?}: {run:?}"
        );
    }
    // No binding to revoke: cynork says which.
    let revoke = admin
        .run(&[
            "project", "rbac", "revoke", "vision", "--role", "viewer", "--user", "bob",
        ])
        .await;
    assert_code(&revoke, NOT_FOUND);
    assert!(
        revoke
            .stderr
            .contains("user bob holds no role viewer in project vision"),
        "{revoke:?}"
    );

    let unknown_role = admin
        .run(&[
            "project", "rbac", "grant", "vision", "--role", "root", "--user", "bob",
        ])
        .await;
    assert_code(&unknown_role, NOT_FOUND);
    assert!(
        unknown_role.stderr.contains(r#"unknown role "root""#),
        "{unknown_role:?}"
    );
    let bindings = admin.run(&["project", "rbac", "list", "vision"]).await;
    assert!(!bindings.ok().contains("\tbob\t"), "{bindings:?}");

    // A wrong current password changes nothing; the right one does, and ends the old one.
    let bob = logged_in(&stack, "bob", BOB_PASSWORD).await;
    let wrong = bob
        .run_with(
            &["auth", "passwd", "--password-stdin"],
            Some("wrong-secret-0009\nrenewed-secret-0008\n"),
            &[],
        )
        .await;
    assert_code(&wrong, AUTH);
    assert!(!wrong.stderr.contains("renewed-secret-0008"), "{wrong:?}");
    assert!(!wrong.stderr.contains("wrong-secret-0009"), "{wrong:?}");
    let still = logged_in(&stack, "bob", BOB_PASSWORD).await;
    let changed = still
        .run_with(
            &["auth", "passwd", "--password-stdin"],
            Some(&format!("{BOB_PASSWORD}\nrenewed-secret-0008\n")),
            &[],
        )
        .await;
    assert_eq!(changed.ok().trim(), "password_changed=true");
    // The change ends bob's other sessions.
    assert_code(&bob.run(&["auth", "whoami"]).await, AUTH);
    logged_in(&stack, "bob", "renewed-secret-0008").await;
    let old = Cynork::new(&stack.gateway)
        .run_with(
            &["auth", "login", "-u", "bob", "--password-stdin"],
            Some(&format!("{BOB_PASSWORD}\n")),
            &[],
        )
        .await;
    assert_code(&old, AUTH);
}

#[tokio::test]
async fn admins_manage_accounts_groups_projects_rules_and_system_roles() {
    let stack = Stack::start().await;
    let admin = Cynork::new(&stack.gateway);
    admin.login_admin().await;
    let http = reqwest::Client::new();

    // Without a password: a one-time token, which the user redeems to set one.
    let created = admin
        .run(&[
            "user",
            "create",
            "dave",
            "--no-password",
            "--email",
            "dave@example.com",
        ])
        .await;
    assert!(created.stderr.contains("shown this once"), "{created:?}");
    let line = created.ok().trim().to_owned();
    let token = field(&line, "set_password_token").to_owned();
    assert!(
        field(&line, "expires_at")
            .parse::<chrono::DateTime<chrono::Utc>>()
            .is_ok()
    );
    assert_eq!(field(&line, "email"), "dave@example.com");
    let url = format!("{}{}", stack.gateway, routes::user::AUTH_SET_PASSWORD);
    let redeemed = http
        .post(&url)
        .json(&json!({"token": token, "password": "fourth-secret-0004"}))
        .send()
        .await
        .unwrap();
    assert!(redeemed.status().is_success(), "{}", redeemed.status());
    let dave = logged_in(&stack, "dave", "fourth-secret-0004").await;

    // An admin reset: a new token, dave's session ends, the token sets a new password.
    let reset = admin
        .run(&["user", "reset-password", "dave", "--token"])
        .await;
    let line = reset.ok().trim().to_owned();
    assert!(line.starts_with("user=dave password_reset=true "), "{line}");
    assert_code(&dave.run(&["auth", "whoami"]).await, AUTH);
    let token = field(&line, "set_password_token");
    let redeemed = http
        .post(&url)
        .json(&json!({"token": token, "password": "fifth-secret-0005"}))
        .send()
        .await
        .unwrap();
    assert!(redeemed.status().is_success(), "{}", redeemed.status());
    let dave = logged_in(&stack, "dave", "fifth-secret-0005").await;
    let revoked = admin.run(&["user", "revoke-sessions", "dave"]).await;
    assert_eq!(revoked.ok().trim(), "user=dave sessions_revoked=true");
    assert_code(&dave.run(&["auth", "whoami"]).await, AUTH);
    let reset = admin
        .run_with(
            &["user", "reset-password", "dave", "--password-stdin"],
            Some("sixth-secret-0006\n"),
            &[],
        )
        .await;
    assert_eq!(reset.ok().trim(), "user=dave password_reset=true");
    logged_in(&stack, "dave", "sixth-secret-0006").await;

    // Lists and filters.
    create_user(&admin, "erin", "seventh-secret-0007").await;
    admin
        .run(&["group", "create", "ops", "--display-name", "Operations"])
        .await
        .ok();
    admin.run(&["group", "add", "ops", "erin"]).await.ok();
    admin.run(&["user", "disable", "dave"]).await.ok();
    let handles = |run: &Run| -> Vec<String> {
        run.ok()
            .lines()
            .filter(|l| l.starts_with("user_id="))
            .map(|l| field(l, "handle").to_owned())
            .collect()
    };
    assert_eq!(
        handles(&admin.run(&["user", "list", "--group", "ops"]).await),
        ["erin"]
    );
    assert_eq!(
        handles(&admin.run(&["user", "list", "--active", "false"]).await),
        ["dave"]
    );
    let page = admin.run(&["user", "list", "-l", "1"]).await;
    assert_eq!(handles(&page).len(), 1, "{page:?}");
    let next = field(page.ok().lines().last().unwrap(), "next_offset").to_owned();
    let rest = admin.run(&["user", "list", "--offset", &next]).await;
    assert!(!handles(&rest).contains(&handles(&page)[0]), "{rest:?}");
    let enabled = admin.run(&["user", "enable", "dave"]).await;
    assert_eq!(field(enabled.ok(), "active"), "true");

    let updated = admin
        .run(&[
            "group",
            "update",
            "ops",
            "--display-name",
            "Ops team",
            "--active",
            "false",
        ])
        .await;
    assert!(
        updated
            .ok()
            .contains(r#"display_name="Ops team" active=false"#),
        "{updated:?}"
    );
    let groups = admin.run(&["group", "list", "-o", "json"]).await.json();
    let ops = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["slug"] == "ops")
        .unwrap();
    assert_eq!(ops["is_active"], false, "{groups}");
    assert_eq!(ops["member_count"], 1, "{groups}");

    // Projects: update, archive, and the two lists.
    admin
        .run(&["project", "create", "--slug", "old", "--title", "Old one"])
        .await
        .ok();
    let changed = admin
        .run(&[
            "project",
            "update",
            "old",
            "--title",
            "Older",
            "--description",
            "to go",
        ])
        .await;
    assert!(
        changed
            .ok()
            .contains(" updated=true slug=old title=Older description=\"to go\""),
        "{changed:?}"
    );
    let refused = admin.run(&["project", "delete", "old"]).await;
    assert_eq!(refused.code, 0, "a declined confirmation: {refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
    let deleted = admin.run(&["project", "delete", "old", "-y"]).await;
    assert!(
        deleted.ok().trim().ends_with(" slug=old deleted=true"),
        "{deleted:?}"
    );
    let all = admin.run(&["project", "list"]).await;
    let old_row = all
        .ok()
        .lines()
        .find(|l| l.split('\t').nth(1) == Some("old"))
        .unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(old_row.split('\t').nth(2), Some("Older"));
    assert_eq!(old_row.split('\t').nth(3), Some("false"));
    let active = admin.run(&["project", "list", "--active-only"]).await;
    assert!(
        active
            .ok()
            .starts_with("project_id\tslug\ttitle\tis_active\tupdated_at\n"),
        "{active:?}"
    );
    assert!(!active.ok().contains("\told\t"), "{active:?}");
    assert_code(&admin.run(&["project", "set", "old"]).await, CONFLICT);

    // System roles: erin becomes an operator everywhere, then not.
    let roles = admin.run(&["role", "list"]).await;
    let names: Vec<&str> = roles.ok().lines().map(|l| field(l, "role")).collect();
    for role in ["viewer", "member", "operator", "admin", "owner"] {
        assert!(names.contains(&role), "{roles:?}");
    }
    let granted = admin
        .run(&[
            "rbac", "grant", "--system", "--role", "operator", "--user", "erin",
        ])
        .await;
    let binding = field(granted.ok(), "binding_id").to_owned();
    assert!(
        granted.ok().contains(" scope=system role=operator "),
        "{granted:?}"
    );
    let system = admin.run(&["rbac", "list", "--system"]).await;
    assert!(
        system
            .ok()
            .contains(&format!("{binding}\toperator\tuser\terin\tsystem")),
        "{system:?}"
    );
    let revoked = admin
        .run(&[
            "rbac", "revoke", "--system", "--role", "operator", "--user", "erin",
        ])
        .await;
    assert_eq!(
        revoked.ok().trim(),
        format!("binding_id={binding} revoked=true")
    );
    let system = admin.run(&["rbac", "list", "--system"]).await;
    assert!(!system.ok().contains(&binding), "{system:?}");

    // Access rules.
    let rule = admin
        .run(&[
            "rule",
            "create",
            "--subject-type",
            "group",
            "--subject",
            "ops",
            "--action",
            "model.use",
            "--resource-type",
            "model",
            "--pattern",
            "qwen*",
            "--effect",
            "deny",
            "--priority",
            "10",
            "--reason",
            "too big",
        ])
        .await;
    let rule_id = field(rule.ok(), "rule_id").to_owned();
    assert!(
        rule.ok()
            .contains(" effect=deny action=model.use resource_type=model pattern=qwen* "),
        "{rule:?}"
    );
    let rules = admin.run(&["rule", "list"]).await;
    assert!(rules.ok().contains(&rule_id), "{rules:?}");
    let gone = admin.run(&["rule", "delete", &rule_id, "-y"]).await;
    assert_eq!(gone.ok().trim(), format!("rule_id={rule_id} deleted=true"));
    assert!(!admin.run(&["rule", "list"]).await.ok().contains(&rule_id));
    assert_code(
        &admin.run(&["rule", "delete", &rule_id, "-y"]).await,
        NOT_FOUND,
    );

    // None of this is for a user without a system role.
    let erin = logged_in(&stack, "erin", "seventh-secret-0007").await;
    for args in [
        &["user", "list"][..],
        &["user", "create", "x", "--no-password"],
        &["group", "create", "x"],
        &["rule", "list"],
        &["audit", "list"],
        &[
            "rbac", "grant", "--system", "--role", "admin", "--user", "erin",
        ],
    ] {
        assert_code(&erin.run(args).await, AUTH);
    }
}
