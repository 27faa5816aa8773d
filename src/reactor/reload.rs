//! SIGHUP: the configuration file is read again, checked as at start-up,
//! and applied to new sessions; what it changes is said in the log. A file
//! that does not check out is refused with the reason, and the running
//! configuration stays.

use std::path::{Path, PathBuf};

use crate::config::Config;

/// The file the process started from, and its text as last applied.
pub struct Reload {
    path: PathBuf,
    text: String,
}

impl Reload {
    pub fn new(path: &Path) -> Reload {
        Reload {
            path: path.to_path_buf(),
            text: std::fs::read_to_string(path).unwrap_or_default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file again, checked, and the dotted keys whose values changed.
    /// The new text becomes the baseline only once `applied` is called.
    pub fn read(&self) -> Result<(Config, String, Vec<String>), String> {
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| format!("cannot be read ({e})"))?;
        let config = Config::from_toml(&text).map_err(|e| e.to_string())?;
        let changed = changed_keys(&self.text, &text);
        Ok((config, text, changed))
    }

    pub fn applied(&mut self, text: String) {
        self.text = text;
    }
}

/// Dotted keys present in one text and not the other, or with other values.
fn changed_keys(old: &str, new: &str) -> Vec<String> {
    let parse = |text: &str| toml::from_str::<toml::Table>(text).unwrap_or_default();
    let (old, new) = (parse(old), parse(new));
    let mut changed = Vec::new();
    // Tables to compare, with their dotted prefix (a work list, not recursion).
    let mut pending = vec![(String::new(), &old, &new)];
    while let Some((prefix, old, new)) = pending.pop() {
        let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for key in keys {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match (old.get(key), new.get(key)) {
                (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
                    pending.push((path, a, b))
                }
                (a, b) if a != b => changed.push(path),
                _ => {}
            }
        }
    }
    changed.sort();
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_named_with_their_tables() {
        let old = "[server]\nlisten = \"127.0.0.1:5280\"\n[backend.routes]\nlocalhost = \"127.0.0.1:5222\"\n";
        let new = "[server]\nlisten = \"127.0.0.1:5280\"\nmax_sessions = 5\n[backend.routes]\nlocalhost = \"127.0.0.1:5223\"\n[dns]\nattempts = 3\n";
        assert_eq!(
            changed_keys(old, new),
            vec!["backend.routes.localhost", "dns", "server.max_sessions"]
        );
        assert!(changed_keys(old, old).is_empty());
    }
}
