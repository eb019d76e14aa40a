//! Database passwords the libpq way: a passfile of
//! `hostname:port:database:username:password` lines (`*` matches anything,
//! `\:` and `\\` escape, `#` starts a comment), the first matching line
//! winning. Like libpq, a file others may read is ignored.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The passfile to read: the flag's, else `PGPASSFILE`, else `~/.pgpass`.
pub fn locate(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("PGPASSFILE").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")))
}

/// Splits one line into its five fields, unescaping; `None` for comments,
/// blank lines and lines of another shape.
fn fields(line: &str) -> Option<[String; 5]> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    fields.try_into().ok()
}

/// The password for `user` on `database` at `host:port`, from the file's
/// text.
pub fn find(text: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    text.lines().filter_map(fields).find_map(|[h, p, d, u, password]| {
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        let host_matches = matches(&h, host) || (h == "localhost" && (host == "127.0.0.1" || host == "::1"));
        (host_matches && matches(&p, &port) && matches(&d, database) && matches(&u, user)).then_some(password)
    })
}

/// The password from the passfile at `path`; `Ok(None)` if the file does
/// not exist or has no line for the connection. An error if others may read
/// it (libpq ignores such a file; we say why instead).
pub fn password(path: &Path, host: &str, port: u16, database: &str, user: &str) -> Result<Option<String>, String> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("passfile {}: {error}", path.display())),
    };
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "passfile {}: group or others may read it; chmod 0600 it (libpq ignores such a file)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|error| format!("passfile {}: {error}", path.display()))?;
    Ok(find(&text, host, port, database, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# shards\n\
                    db-1:5432:shard_1:app:first\n\
                    *:*:shard_2:app:pa\\:ss\\\\word\n\
                    localhost:6543:*:*:local\n\
                    *:*:*:app:fallback\n";
        assert_eq!(find(text, "db-1", 5432, "shard_1", "app").as_deref(), Some("first"));
        assert_eq!(find(text, "db-9", 5432, "shard_2", "app").as_deref(), Some("pa:ss\\word"));
        assert_eq!(find(text, "127.0.0.1", 6543, "any", "bob").as_deref(), Some("local"));
        assert_eq!(find(text, "db-1", 5432, "shard_3", "app").as_deref(), Some("fallback"));
        assert_eq!(find(text, "db-1", 5432, "shard_3", "bob"), None);
        assert_eq!(find("short:line", "h", 1, "d", "u"), None);
    }

    #[test]
    fn a_file_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(password(&path, "h", 1, "d", "u").unwrap_err().contains("chmod 0600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(password(&path, "h", 1, "d", "u").unwrap().as_deref(), Some("secret"));
        assert_eq!(password(&dir.path().join("missing"), "h", 1, "d", "u").unwrap(), None);
    }
}
