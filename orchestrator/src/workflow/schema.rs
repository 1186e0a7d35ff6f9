//! The JSON schemas the PM model's answers are constrained by (`response_format`), and the
//! parsers that read them back. Every string and list is bounded so that an answer closes within
//! `max_tokens` (`PM_MAX_TOKENS`) even when every character costs a token, which a small
//! model's odd output can: an answer cut off by the token limit would not parse.

use serde_json::{Value, json};

use super::{Plan, PlanStep, Verdict, Verification};

/// Tokens an answer's keys, quotes and punctuation may take besides its strings.
const OVERHEAD_TOKENS: u32 = 48;
/// Tokens of each step's keys and punctuation.
const STEP_OVERHEAD_TOKENS: u32 = 24;
/// Commands one step may run.
const MAX_COMMANDS: u32 = 3;
/// Assumptions a plan may state.
const MAX_ASSUMPTIONS: u32 = 2;
/// Findings or actions a verification may list.
const MAX_FINDINGS: u32 = 3;

fn budget(max_tokens: u32) -> u32 {
    max_tokens.saturating_sub(OVERHEAD_TOKENS).max(16)
}

fn text(max: u32) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max.max(8)})
}

fn list(item: Value, max_items: u32) -> Value {
    json!({"type": "array", "items": item, "maxItems": max_items})
}

/// `{"action":"answer","answer":…}`: a direct answer (the plan's other branch) and the summary.
pub fn answer(max_tokens: u32) -> Value {
    json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["answer"]},
            "answer": text(budget(max_tokens).min(4000))
        },
        "required": ["action", "answer"],
        "additionalProperties": false
    })
}

/// The shortest step the plan schema allows: two 8-character texts and three 8-character
/// commands.
const MIN_STEP_TOKENS: u32 = 2 * 8 + MAX_COMMANDS * (8 + 4) + STEP_OVERHEAD_TOKENS;

/// How many steps a plan may have: `max_steps` (`PM_MAX_STEPS`), fewer if that many would not
/// fit in `max_tokens`.
pub fn steps_allowed(max_steps: u32, max_tokens: u32) -> u32 {
    let budget = budget(max_tokens);
    let room = budget - MAX_ASSUMPTIONS * (budget / 16);
    max_steps.min(room / MIN_STEP_TOKENS).max(1)
}

/// A direct answer, or `{"action":"plan","steps":[{description, commands, expected_evidence}],
/// "assumptions":[…]}` with 1 to `max_steps` steps (already within [`steps_allowed`]).
pub fn plan(max_steps: u32, max_tokens: u32) -> Value {
    let budget = budget(max_tokens);
    let assumption_chars = budget / 16;
    let per_step = (budget - MAX_ASSUMPTIONS * assumption_chars) / max_steps.max(1);
    // Texts take a sixth each, but leave the commands at least their minimum.
    let words = (per_step / 6)
        .min(per_step.saturating_sub(STEP_OVERHEAD_TOKENS + MAX_COMMANDS * 12) / 2)
        .min(200);
    let command_chars = (per_step.saturating_sub(2 * words + STEP_OVERHEAD_TOKENS) / MAX_COMMANDS)
        .saturating_sub(4)
        .min(300);
    let step = json!({
        "type": "object",
        "properties": {
            "description": text(words),
            "commands": {"type": "array", "items": text(command_chars), "minItems": 1,
                         "maxItems": MAX_COMMANDS},
            "expected_evidence": text(words)
        },
        "required": ["description", "commands", "expected_evidence"],
        "additionalProperties": false
    });
    let plan = json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["plan"]},
            "steps": {"type": "array", "items": step, "minItems": 1, "maxItems": max_steps.max(1)},
            "assumptions": list(text(assumption_chars), MAX_ASSUMPTIONS)
        },
        "required": ["action", "steps"],
        "additionalProperties": false
    });
    json!({"anyOf": [answer(max_tokens), plan]})
}

/// `{"status":"pass"|"fail","findings":[…],"recommended_actions":[…],"retry_commands":[…]}`.
pub fn verification(max_tokens: u32) -> Value {
    let each = budget(max_tokens) / (3 * MAX_FINDINGS) - 4;
    json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["pass", "fail"]},
            "findings": list(text(each), MAX_FINDINGS),
            "recommended_actions": list(text(each), MAX_FINDINGS),
            "retry_commands": list(text(each), MAX_FINDINGS)
        },
        "required": ["status", "findings"],
        "additionalProperties": false
    })
}

fn object(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("the model's answer is not valid JSON ({e})"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err("the model's answer is not a JSON object".into())
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The answer text of `{"action":"answer","answer":…}`.
pub fn parse_answer(text: &str) -> Result<String, String> {
    let value = object(text)?;
    match (value["action"].as_str(), value["answer"].as_str()) {
        (Some("answer"), Some(a)) if !a.trim().is_empty() => Ok(a.to_owned()),
        (Some("answer"), _) => Err("the model's answer has no answer text".into()),
        (Some(other), _) => Err(format!("the model chose an unknown action {other:?}")),
        (None, _) => Err("the model's answer has no action".into()),
    }
}

/// A plan, or a direct answer as a plan without steps; at most `max_steps` steps.
pub fn parse_plan(text: &str, max_steps: u32) -> Result<Plan, String> {
    let value = object(text)?;
    match value["action"].as_str() {
        Some("answer") => Ok(Plan {
            steps: Vec::new(),
            assumptions: Vec::new(),
            answer: Some(parse_answer(text)?),
        }),
        Some("plan") => {
            let raw = value["steps"].as_array().cloned().unwrap_or_default();
            if raw.is_empty() {
                return Err("the model's plan has no steps".into());
            }
            if raw.len() > max_steps as usize {
                return Err(format!(
                    "the model's plan has {} steps, more than the {max_steps} allowed",
                    raw.len()
                ));
            }
            let mut steps = Vec::new();
            for (i, step) in raw.iter().enumerate() {
                let commands = strings(&step["commands"]);
                if commands.is_empty() {
                    return Err(format!(
                        "step {} of the model's plan has no commands",
                        i + 1
                    ));
                }
                steps.push(PlanStep {
                    description: step["description"].as_str().unwrap_or_default().to_owned(),
                    commands,
                    expected_evidence: step["expected_evidence"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            Ok(Plan {
                steps,
                assumptions: strings(&value["assumptions"]),
                answer: None,
            })
        }
        Some(other) => Err(format!("the model chose an unknown action {other:?}")),
        None => Err("the model's answer has no action".into()),
    }
}

/// A verification.
pub fn parse_verification(text: &str) -> Result<Verification, String> {
    let value = object(text)?;
    let status = match value["status"].as_str() {
        Some("pass") => Verdict::Pass,
        Some("fail") => Verdict::Fail,
        Some(other) => {
            return Err(format!(
                "the verifier's status {other:?} is not pass or fail"
            ));
        }
        None => return Err("the verifier's answer has no status".into()),
    };
    let retry = strings(&value["retry_commands"]);
    Ok(Verification {
        status,
        findings: strings(&value["findings"]),
        recommended_actions: strings(&value["recommended_actions"]),
        retry_commands: (!retry.is_empty()).then_some(retry),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max(schema: &Value, pointer: &str) -> u64 {
        schema
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{pointer} in {schema}"))
    }

    #[test]
    fn every_answer_fits_the_token_limit_even_at_a_token_per_character() {
        for (steps, max_tokens) in [(1, 256), (4, 512), (4, 4096), (8, 512), (100, 512)] {
            let limit = u64::from(max_tokens - OVERHEAD_TOKENS);
            let schema = plan(steps_allowed(steps, max_tokens), max_tokens);
            assert!(max(&schema, "/anyOf/0/properties/answer/maxLength") <= limit);
            let p = "/anyOf/1/properties";
            let step = format!("{p}/steps/items/properties");
            let per_step = 2 * max(&schema, &format!("{step}/description/maxLength"))
                + max(&schema, &format!("{step}/commands/maxItems"))
                    * (max(&schema, &format!("{step}/commands/items/maxLength")) + 4)
                + u64::from(STEP_OVERHEAD_TOKENS);
            let total = max(&schema, &format!("{p}/steps/maxItems")) * per_step
                + max(&schema, &format!("{p}/assumptions/maxItems"))
                    * max(&schema, &format!("{p}/assumptions/items/maxLength"));
            assert!(total <= limit, "{steps} steps, {max_tokens}: {total}");
            let v = verification(max_tokens);
            let lists = 3
                * max(&v, "/properties/findings/maxItems")
                * (max(&v, "/properties/findings/items/maxLength") + 4);
            assert!(lists <= limit, "{max_tokens}: verification {lists}");
        }
    }

    #[test]
    fn the_steps_allowed_shrink_to_what_fits() {
        assert_eq!(steps_allowed(4, 512), 4);
        assert_eq!(steps_allowed(8, 512), 5);
        assert_eq!(steps_allowed(8, 4096), 8);
        assert_eq!(steps_allowed(3, 16), 1);
    }

    #[test]
    fn plans_parse_or_say_why_not() {
        let plan = parse_plan(
            r#"{"action":"plan","steps":[{"description":"d","commands":["ls"," "],
                "expected_evidence":"e"}],"assumptions":["a"]}"#,
            4,
        )
        .unwrap();
        assert_eq!(plan.steps[0].commands, ["ls"]);
        assert_eq!(plan.assumptions, ["a"]);
        let direct = parse_plan(r#"{"action":"answer","answer":"hi"}"#, 4).unwrap();
        assert_eq!(
            (direct.steps.len(), direct.answer.as_deref()),
            (0, Some("hi"))
        );
        for (text, why) in [
            ("I am a model", "not valid JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"action":"dance"}"#, "unknown action \"dance\""),
            (r#"{"action":"plan","steps":[]}"#, "no steps"),
            (
                r#"{"action":"plan","steps":[{"description":"d","commands":[]}]}"#,
                "step 1 of the model's plan has no commands",
            ),
            (r#"{"action":"answer","answer":" "}"#, "no answer text"),
        ] {
            let err = parse_plan(text, 4).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        let two = r#"{"action":"plan","steps":[{"commands":["a"]},{"commands":["b"]}]}"#;
        assert!(
            parse_plan(two, 1)
                .unwrap_err()
                .contains("more than the 1 allowed")
        );
    }

    #[test]
    fn verifications_parse_or_say_why_not() {
        let v = parse_verification(
            r#"{"status":"fail","findings":["no marker"],"recommended_actions":["print it"],
                "retry_commands":["echo marker"]}"#,
        )
        .unwrap();
        assert_eq!(v.status, Verdict::Fail);
        assert_eq!(v.retry_commands.unwrap(), ["echo marker"]);
        let pass = parse_verification(r#"{"status":"pass","findings":[]}"#).unwrap();
        assert_eq!((pass.status, pass.retry_commands), (Verdict::Pass, None));
        assert!(
            parse_verification(r#"{"status":"maybe"}"#)
                .unwrap_err()
                .contains("not pass or fail")
        );
        assert!(parse_verification("{}").unwrap_err().contains("no status"));
    }
}
