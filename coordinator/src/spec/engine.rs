//! Engines and their parameters in a spec: `[engine]` (a command that
//! trains every cell), `[engines.NAME]` (commands an `engine` axis picks
//! among, beside the built-in `candle`), and `[grid.params]` (free-form
//! axes a command reads from its job file).

use std::collections::BTreeMap;

use widesweep_arch::{CANDLE, CommandEngine, ParamValue};

use super::SpecError;

/// The name `[engine]` defines its command under.
pub const SINGLE_ENGINE: &str = "command";

const NAME_MAX: usize = 40;
const MAX_GRACE_SECONDS: u32 = 24 * 3600;
const MAX_HEARTBEAT_SECONDS: u32 = 7 * 24 * 3600;

/// The spec's command engines and the engine of cells that name none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Engines {
    pub defined: BTreeMap<String, CommandEngine>,
    /// `candle`, or `command` when the spec has an `[engine]` table.
    pub default: String,
}

impl Engines {
    /// Reads `[engine]` and `[engines.NAME]`, each checked as a command.
    pub(super) fn read(
        single: Option<CommandEngine>,
        named: BTreeMap<String, CommandEngine>,
    ) -> Result<Self, SpecError> {
        let mut defined = BTreeMap::new();
        for (name, engine) in named {
            check_name(&name, &format!("engines.{name}"))?;
            if name == SINGLE_ENGINE && single.is_some() {
                return Err(SpecError::field("engines.command", "is also what [engine] defines: rename one of them"));
            }
            check_command(&engine, &format!("engines.{name}"))?;
            defined.insert(name, engine);
        }
        let default = match single {
            Some(engine) => {
                check_command(&engine, "engine")?;
                defined.insert(SINGLE_ENGINE.to_string(), engine);
                SINGLE_ENGINE.to_string()
            }
            None => CANDLE.to_string(),
        };
        Ok(Self { defined, default })
    }

    /// Checks an `engine` axis's values: `candle` or a defined command.
    pub(super) fn check_axis(&self, section: &str, names: &[String]) -> Result<(), SpecError> {
        for name in names {
            if name != CANDLE && !self.defined.contains_key(name) {
                let mut known: Vec<&str> = vec![CANDLE];
                known.extend(self.defined.keys().map(String::as_str));
                return Err(SpecError::field(
                    format!("{section}.engine"),
                    format!(
                        "{name:?} is not an engine of this spec: use one of {} (a command engine is defined in an [engines.{name}] table)",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// An engine's name: short, for tables and columns, never `candle`.
fn check_name(name: &str, field: &str) -> Result<(), SpecError> {
    let valid = !name.is_empty()
        && name.len() <= NAME_MAX
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
    if !valid {
        return Err(SpecError::field(
            field,
            format!("the engine name {name:?} is invalid: use 1 to {NAME_MAX} lowercase letters, digits, '-' or '_'"),
        ));
    }
    if name == CANDLE {
        return Err(SpecError::field(field, "candle is the built-in engine: give a command engine another name"));
    }
    Ok(())
}

fn check_command(engine: &CommandEngine, field: &str) -> Result<(), SpecError> {
    match engine.command.first() {
        None => {
            return Err(SpecError::field(
                format!("{field}.command"),
                "is empty: give the program and its arguments, e.g. [\"python\", \"train.py\"]",
            ));
        }
        Some(program) if program.trim().is_empty() => {
            return Err(SpecError::field(format!("{field}.command"), "names an empty program"));
        }
        Some(_) => {}
    }
    if let Some(arg) = engine.command.iter().find(|arg| arg.contains('\0')) {
        return Err(SpecError::field(format!("{field}.command"), format!("{arg:?} holds a NUL character")));
    }
    for (key, value) in &engine.env {
        let valid = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || value.contains('\0') {
            return Err(SpecError::field(
                format!("{field}.env.{key}"),
                "is invalid: use a name of letters, digits and '_' (not starting with a digit) and a value without NUL",
            ));
        }
        if key.starts_with("WIDESWEEP_") || key == "CUDA_VISIBLE_DEVICES" {
            return Err(SpecError::field(
                format!("{field}.env.{key}"),
                "is set by the worker for each job: the spec cannot set it",
            ));
        }
    }
    if !(1..=MAX_GRACE_SECONDS).contains(&engine.grace_seconds) {
        return Err(SpecError::field(
            format!("{field}.grace_seconds"),
            format!("{} is invalid: use 1 to {MAX_GRACE_SECONDS} seconds", engine.grace_seconds),
        ));
    }
    if !(1..=MAX_HEARTBEAT_SECONDS).contains(&engine.heartbeat_seconds) {
        return Err(SpecError::field(
            format!("{field}.heartbeat_seconds"),
            format!("{} is invalid: use 1 to {MAX_HEARTBEAT_SECONDS} seconds", engine.heartbeat_seconds),
        ));
    }
    Ok(())
}

/// One free-form axis of `[grid.params]` (or a case's or an exclusion's
/// `params`): a name and its distinct scalar values in the spec's order.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ParamAxis {
    pub name: String,
    pub values: Vec<ParamValue>,
}

impl ParamAxis {
    pub(super) fn read(section: &str, name: String, value: toml::Value) -> Result<Self, SpecError> {
        let field = format!("{section}.params.{name}");
        let valid_name = !name.is_empty()
            && name.len() <= NAME_MAX
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(SpecError::field(
                field,
                format!(
                    "the parameter name {name:?} is invalid: use 1 to {NAME_MAX} lowercase letters, digits or '_', not starting with a digit"
                ),
            ));
        }
        let items = match value {
            toml::Value::Array(items) => items,
            one => vec![one],
        };
        if items.is_empty() {
            return Err(SpecError::field(field, "is empty: give at least one value"));
        }
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            let value = match item {
                toml::Value::Boolean(b) => ParamValue::Bool(b),
                toml::Value::Integer(i) => ParamValue::Int(i),
                toml::Value::Float(x) if x.is_finite() => ParamValue::Float(x),
                toml::Value::String(s) if !s.contains(|c: char| c.is_control()) => ParamValue::Text(s),
                other => {
                    return Err(SpecError::field(
                        field,
                        format!(
                            "{other} is invalid: use a string, integer, finite float or boolean (or a list of them)"
                        ),
                    ));
                }
            };
            values.push(value);
        }
        if let Some(value) = super::raw::repeated(&values) {
            return Err(SpecError::field(field, format!("{value} appears twice; axis values must be distinct")));
        }
        Ok(Self { name, values })
    }
}
