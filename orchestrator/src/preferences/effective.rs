//! The effective view: the scopes folded from the lowest precedence to the highest.

use std::collections::BTreeMap;

use cynode_contracts::preferences::PreferenceSource;
use sqlx::PgPool;
use uuid::Uuid;

use super::read::{COLUMNS, Row};
use super::{EffectivePreferences, PrefError, PreferenceEntry, Result};

/// What a task runs with: system < its owner's < its project's < its own.
pub async fn effective_for_task(db: &PgPool, task_id: Uuid) -> Result<EffectivePreferences> {
    let task: Option<(Uuid, Option<Uuid>)> =
        sqlx::query_as("SELECT created_by, project_id FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(db)
            .await?;
    let (owner, project) =
        task.ok_or_else(|| PrefError::NotFound(format!("task {task_id} does not exist")))?;
    effective(db, owner, project, Some(task_id)).await
}

/// What a user's work in a project (or outside any) runs with: system < their groups < user <
/// project.
pub async fn effective_for(
    db: &PgPool,
    user_id: Uuid,
    project_id: Option<Uuid>,
) -> Result<EffectivePreferences> {
    effective(db, user_id, project_id, None).await
}

async fn effective(
    db: &PgPool,
    user_id: Uuid,
    project_id: Option<Uuid>,
    task_id: Option<Uuid>,
) -> Result<EffectivePreferences> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM preference_entries
         WHERE scope_type = 'system'
            OR (scope_type = 'group' AND scope_id IN (
                SELECT m.group_id FROM group_memberships m JOIN groups g ON g.id = m.group_id
                WHERE m.user_id = $1 AND m.is_active AND g.is_active))
            OR (scope_type = 'user' AND scope_id = $1)
            OR (scope_type = 'project' AND scope_id = $2)
            OR (scope_type = 'task' AND scope_id = $3)"
    ))
    .bind(user_id)
    .bind(project_id)
    .bind(task_id)
    .fetch_all(db)
    .await?;
    let entries = rows
        .into_iter()
        .map(PreferenceEntry::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(fold(entries))
}

/// The effective view of `entries` (of one user, project and task): folded from the lowest
/// scope to the highest (`ScopeType`'s order), ties by `updated_at`, then `id`.
pub fn fold(mut entries: Vec<PreferenceEntry>) -> EffectivePreferences {
    entries.sort_by(|a, b| {
        (a.scope_type, a.updated_at, a.id).cmp(&(b.scope_type, b.updated_at, b.id))
    });
    let mut winners: BTreeMap<String, PreferenceEntry> = BTreeMap::new();
    for entry in entries {
        if !entry.value_type.admits(&entry.value) {
            continue;
        }
        if entry.value.is_null() {
            winners.remove(&entry.key);
        } else {
            winners.insert(entry.key.clone(), entry);
        }
    }
    let sources = winners
        .values()
        .map(|e| PreferenceSource {
            key: e.key.clone(),
            scope_type: e.scope_type,
            scope_id: e.scope_id,
        })
        .collect();
    EffectivePreferences {
        effective: winners.into_iter().map(|(k, e)| (k, e.value)).collect(),
        sources,
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::{Value, json};

    use super::*;
    use crate::preferences::{Scope, ScopeType, ValueType};

    fn entry(
        scope: Scope,
        key: &str,
        value: Value,
        value_type: ValueType,
        at: i64,
    ) -> PreferenceEntry {
        PreferenceEntry {
            id: Uuid::new_v4(),
            scope_type: scope.scope_type(),
            scope_id: scope.scope_id(),
            key: key.into(),
            value,
            value_type,
            version: 1,
            updated_at: DateTime::from_timestamp(at, 0).unwrap(),
            updated_by: None,
        }
    }

    #[test]
    fn higher_scopes_win_whatever_the_order_given() {
        let (u, p, t) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let s = ValueType::String;
        // Newer lower-scope entries still lose: scope decides before time.
        let view = fold(vec![
            entry(Scope::Task(t), "a", json!("task"), s, 1),
            entry(Scope::System, "a", json!("system"), s, 9),
            entry(Scope::Project(p), "a", json!("project"), s, 5),
            entry(Scope::User(u), "a", json!("user"), s, 7),
            entry(Scope::User(u), "b", json!("user"), s, 7),
            entry(Scope::System, "b", json!("system"), s, 8),
            entry(
                Scope::Project(p),
                "c",
                json!({"x": 1}),
                ValueType::Object,
                1,
            ),
        ]);
        assert_eq!(view.effective["a"], json!("task"));
        assert_eq!(view.effective["b"], json!("user"));
        assert_eq!(view.effective["c"], json!({"x": 1}));
        assert_eq!(
            view.sources,
            vec![
                PreferenceSource {
                    key: "a".into(),
                    scope_type: ScopeType::Task,
                    scope_id: Some(t)
                },
                PreferenceSource {
                    key: "b".into(),
                    scope_type: ScopeType::User,
                    scope_id: Some(u)
                },
                PreferenceSource {
                    key: "c".into(),
                    scope_type: ScopeType::Project,
                    scope_id: Some(p)
                },
            ]
        );
    }

    #[test]
    fn null_masks_lower_scopes_and_a_higher_value_comes_back() {
        let (u, p) = (Uuid::new_v4(), Uuid::new_v4());
        let n = ValueType::Number;
        let view = fold(vec![
            entry(Scope::System, "masked", json!(1), n, 1),
            entry(Scope::User(u), "masked", Value::Null, n, 2),
            entry(Scope::System, "back", json!(1), n, 1),
            entry(Scope::User(u), "back", Value::Null, n, 2),
            entry(Scope::Project(p), "back", json!(3), n, 3),
        ]);
        assert!(!view.effective.contains_key("masked"), "{view:?}");
        assert_eq!(view.effective["back"], json!(3));
        assert_eq!(view.sources.len(), 1);
    }

    #[test]
    fn a_mistyped_entry_is_skipped_and_masks_nothing() {
        let t = Uuid::new_v4();
        let view = fold(vec![
            entry(Scope::System, "k", json!(true), ValueType::Boolean, 1),
            entry(Scope::Task(t), "k", json!("yes"), ValueType::Boolean, 2),
        ]);
        assert_eq!(view.effective["k"], json!(true));
        assert_eq!(view.sources[0].scope_type, ScopeType::System);
    }

    #[test]
    fn ties_in_a_scope_go_to_the_newest_then_the_highest_id() {
        let u = Uuid::new_v4();
        let s = ValueType::String;
        let older = entry(Scope::User(u), "k", json!("older"), s, 1);
        let newer = entry(Scope::User(u), "k", json!("newer"), s, 2);
        assert_eq!(
            fold(vec![newer.clone(), older.clone()]).effective["k"],
            json!("newer")
        );
        let mut same = newer.clone();
        same.value = json!("same time");
        let winner = if same.id > newer.id {
            "same time"
        } else {
            "newer"
        };
        assert_eq!(fold(vec![same, newer]).effective["k"], json!(winner));
    }
}
