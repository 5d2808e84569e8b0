//! `--config osprey.yaml`: every `serve` flag as a key of a YAML file.
//!
//! The file is read before the command line is parsed, and each key becomes the flag's `OSPREY_*`
//! variable unless that variable is already set. So a value is taken from, in order: the flag, the
//! variable, the file, the default; and each default stays written once (in the flag or the store).
//! Keys are the flag names without the dashes (`max-block-bytes` or `max_block_bytes`).

use std::collections::BTreeMap;

use anyhow::{bail, Context};

/// The `--config` (or `OSPREY_CONFIG`) path, if any, from the raw arguments.
fn config_path(args: &[String]) -> Option<String> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(path.to_string());
        }
        if arg == "--config" {
            return iter.next().cloned();
        }
    }
    std::env::var("OSPREY_CONFIG").ok()
}

/// The variable of every `serve` flag that has one, by key.
fn variables() -> BTreeMap<String, String> {
    <crate::serve::ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"))
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let env = arg.get_env()?.to_str()?;
            (long != "config").then(|| (long.to_string(), env.to_string()))
        })
        .collect()
}

/// Reads the config file named on the command line, if any, into the environment.
pub fn apply_file(args: &[String]) -> anyhow::Result<()> {
    let Some(path) = config_path(args) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let values: BTreeMap<String, serde_yaml_ng::Value> = if text.trim().is_empty() {
        BTreeMap::new()
    } else {
        serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{path} is not a YAML map of settings"))?
    };
    let variables = variables();
    for (key, value) in values {
        let Some(variable) = variables.get(&key.replace('_', "-")) else {
            bail!(
                "{path}: unknown setting {key:?}; the settings are: {}",
                variables.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        let text = match value {
            serde_yaml_ng::Value::String(s) => s,
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            serde_yaml_ng::Value::Bool(b) => b.to_string(),
            other => bail!("{path}: {key} must be a string, number or boolean, not {other:?}"),
        };
        if std::env::var_os(variable).is_none() {
            std::env::set_var(variable, text);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> String {
        let path =
            std::env::temp_dir().join(format!("osprey-config-{}-{name}.yaml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn keys_become_variables_unless_already_set() {
        let path = write(
            "ok",
            "max-block-bytes: 64MiB\nwal_queue: 99\nretention: 7d\n",
        );
        std::env::set_var("OSPREY_RETENTION", "1d");
        apply_file(&["osprey".into(), "--config".into(), path]).unwrap();
        assert_eq!(std::env::var("OSPREY_MAX_BLOCK_BYTES").unwrap(), "64MiB");
        assert_eq!(std::env::var("OSPREY_WAL_QUEUE").unwrap(), "99");
        assert_eq!(
            std::env::var("OSPREY_RETENTION").unwrap(),
            "1d",
            "the variable wins"
        );
    }

    #[test]
    fn an_unknown_key_is_named() {
        let path = write("bad", "max-block-bites: 1\n");
        let error = apply_file(&["osprey".into(), format!("--config={path}")]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("unknown setting \"max-block-bites\""),
            "{error}"
        );
    }
}
