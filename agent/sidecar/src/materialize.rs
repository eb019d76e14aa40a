//! `--materialize DIR`: every tenant's runtime config, as this region
//! serves it (tenants pinned to other regions get no file, as api-nodes
//! refuse them there) (the api-node's `/config/{tenant}.json` bytes, `configVersion`
//! and `region` included), as `DIR/config/{tenant}.json`, each written
//! atomically (temp file, rename), deleted tenants removed, and
//! `DIR/manifest.json` (revision and hashes) written last, so a web server
//! can serve the runtime config straight from disk and a reader of the
//! manifest finds every file it lists.
//!
//! For a web server that derives its ETag from the modification time and
//! size (nginx: seconds and bytes), every rewrite of a file moves its
//! modification time forward by at least a second, so two versions of equal
//! size written within one second never share an ETag. The files are
//! world-readable (0644): they are public, and the web server runs as
//! another user.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::sync::watch;

use agent::{Agent, View};

/// Writes `bytes` to `path` atomically, world-readable, with `modified` as
/// its modification time: a temp file in the same directory with an
/// unpredictable name, created exclusively (`O_CREAT|O_EXCL`, so a planted
/// file or symbolic link of that name is never written through), then a
/// rename over `path` (which replaces a link, never follows it). Not
/// fsynced: after a crash the agent writes every file again on its first
/// sync.
fn write_atomically(path: &Path, bytes: &[u8], modified: SystemTime) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".materialize-").suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.as_file().set_modified(modified)?;
    tmp.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// The modification time for a file's next version: now, or a second after
/// the last one if that is not earlier (whole seconds, as nginx's ETag sees
/// them).
fn next_modified(last: Option<SystemTime>) -> SystemTime {
    let seconds = |time: SystemTime| time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let now = seconds(SystemTime::now());
    let next = last.map_or(now, |last| now.max(seconds(last) + 1));
    SystemTime::UNIX_EPOCH + Duration::from_secs(next)
}

/// The files of one materialized directory.
pub(crate) struct Materializer {
    dir: PathBuf,
    /// The sidecar's region: tenants pinned away from it get no file.
    region: String,
    /// What is on disk: tenant id -> the served document's sha256 (empty
    /// when unknown) and the file's modification time.
    written: HashMap<String, (String, Option<SystemTime>)>,
}

impl Materializer {
    /// Prepares `dir`; files of tenants no longer in the view are removed on
    /// the first sync.
    pub(crate) fn new(dir: &Path, region: &str) -> io::Result<Self> {
        std::fs::create_dir_all(dir.join("config"))?;
        let mut written = HashMap::new();
        for entry in std::fs::read_dir(dir.join("config"))? {
            let entry = entry?;
            let path = entry.path();
            let stem = path.file_stem().and_then(|stem| stem.to_str()).map(str::to_owned);
            if let (Some(stem), Some("json")) = (stem, path.extension().and_then(|extension| extension.to_str())) {
                // Unknown hash: rewritten on the first sync, after this time.
                let modified = entry.metadata().and_then(|metadata| metadata.modified()).ok();
                written.insert(stem, (String::new(), modified));
            }
        }
        Ok(Self { dir: dir.to_path_buf(), region: region.to_owned(), written })
    }

    /// Brings the directory to `view`: changed files, removals, then the manifest.
    pub(crate) fn sync(&mut self, view: &View) -> io::Result<()> {
        let config = self.dir.join("config");
        let served =
            |entry: &&Arc<agent::TenantEntry>| proto::is_served_in(entry.record.placement.as_ref(), &self.region);
        for entry in view.tenants().filter(served) {
            let served = entry.served();
            let last = self.written.get(entry.id());
            if last.map(|(sha256, _)| sha256) != Some(&served.sha256) {
                let modified = next_modified(last.and_then(|(_, modified)| *modified));
                write_atomically(&config.join(format!("{}.json", entry.id())), &served.json, modified)?;
                self.written.insert(entry.id().to_owned(), (served.sha256.clone(), Some(modified)));
            }
        }
        let gone: Vec<String> =
            self.written.keys().filter(|id| view.tenant(id).filter(|entry| served(entry)).is_none()).cloned().collect();
        for id in gone {
            match std::fs::remove_file(config.join(format!("{id}.json"))) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
            self.written.remove(&id);
        }
        let tenants: serde_json::Map<String, serde_json::Value> = view
            .tenants()
            .filter(served)
            .map(|entry| {
                (
                    entry.id().to_owned(),
                    json!({ "sha256": entry.served().sha256, "configVersion": entry.config_version() }),
                )
            })
            .collect();
        let manifest = json!({ "revision": view.revision, "clusterId": view.cluster_id, "tenants": tenants });
        write_atomically(&self.dir.join("manifest.json"), manifest.to_string().as_bytes(), SystemTime::now())
    }
}

/// Keeps `dir` in step with the agent until `stop` turns true. Changes that
/// arrive while a sync runs are coalesced into the next one.
pub(crate) async fn run(agent: Arc<Agent>, dir: PathBuf, mut stop: watch::Receiver<bool>) -> io::Result<()> {
    let mut materializer = Materializer::new(&dir, &agent.config().region)?;
    let mut changed = agent.changed();
    loop {
        let view = Arc::clone(&agent.view());
        if view.revision > 0 {
            // Small files on local disk: done in place rather than shipped to
            // a blocking thread with the materializer's state.
            if let Err(error) = materializer.sync(&view) {
                tracing::error!(%error, dir = %dir.display(), "materializing the config files failed; retrying on the next change");
            }
        }
        tokio::select! {
            result = changed.changed() => if result.is_err() { return Ok(()) },
            _ = stop.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proto::v1::{self, TenantRecord, TenantStatus};

    use super::*;

    fn record(id: &str, revision: u64, json: &str) -> TenantRecord {
        TenantRecord {
            id: id.to_owned(),
            status: TenantStatus::Active as i32,
            mod_revision: revision,
            config_revision: revision,
            public_bundle: Some(v1::Bundle {
                json: json.as_bytes().to_vec().into(),
                sha256: compiler::document::sha256_hex(json.as_bytes()),
            }),
            ..Default::default()
        }
    }

    /// Someone who can write the directory (nginx's group, say) plants links
    /// where the materializer writes: at the old predictable temp name and
    /// at a tenant's file. Neither is written through.
    #[test]
    fn planted_links_are_replaced_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "keep").expect("write");
        let mut materializer = Materializer::new(dir.path(), "eu-west").expect("new");
        let config = dir.path().join("config");
        std::os::unix::fs::symlink(&outside, config.join(".acme.json.tmp")).expect("symlink");
        std::os::unix::fs::symlink(&outside, config.join("acme.json")).expect("symlink");
        let view = View::restored(1, "cluster".to_owned(), [record("acme", 1, r#"{"tenant":"acme"}"#)], "eu-west");
        materializer.sync(&view).expect("sync");
        assert_eq!(std::fs::read_to_string(&outside).expect("read"), "keep");
        let written = config.join("acme.json");
        assert!(std::fs::symlink_metadata(&written).expect("stat").is_file(), "the link was replaced by a file");
        assert_eq!(
            std::fs::read_to_string(&written).expect("read"),
            r#"{"config":{},"configVersion":1,"region":"eu-west","tenant":"acme","theme":{}}"#
        );
    }

    /// A tenant pinned to other regions gets no file here, and loses it
    /// when it is pinned away.
    #[test]
    fn tenants_pinned_elsewhere_are_not_materialized() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut materializer = Materializer::new(dir.path(), "eu-west").expect("new");
        let file = dir.path().join("config").join("acme.json");
        let view = View::restored(1, "cluster".to_owned(), [record("acme", 1, r#"{"tenant":"acme"}"#)], "eu-west");
        materializer.sync(&view).expect("sync");
        assert!(file.exists());
        let mut pinned = record("acme", 2, r#"{"tenant":"acme"}"#);
        pinned.placement = Some(v1::Placement { allowed_regions: vec!["us-east".to_owned()], ..Default::default() });
        let view = View::restored(2, "cluster".to_owned(), [pinned], "eu-west");
        materializer.sync(&view).expect("sync");
        assert!(!file.exists(), "pinned to us-east: no file in eu-west");
        let manifest = std::fs::read_to_string(dir.path().join("manifest.json")).expect("manifest");
        assert!(!manifest.contains("acme"), "{manifest}");
    }

    /// Two versions of equal size written within a second differ in
    /// modification time (so in nginx's ETag), and the files are readable
    /// by the web server's user.
    #[test]
    fn every_version_moves_the_modification_time_and_is_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut materializer = Materializer::new(dir.path(), "eu-west").expect("new");
        let file = dir.path().join("config").join("acme.json");
        let stat = || std::fs::metadata(&file).expect("stat");
        let mut times = Vec::new();
        for (revision, color) in [(1, "#000001"), (2, "#000002"), (3, "#000003")] {
            let json = format!(r#"{{"tenant":"acme","theme":{{"color":"{color}"}}}}"#);
            let view = View::restored(revision, "cluster".to_owned(), [record("acme", revision, &json)], "eu-west");
            materializer.sync(&view).expect("sync");
            times.push(stat().modified().expect("mtime"));
            assert_eq!(stat().permissions().mode() & 0o777, 0o644);
        }
        assert!(times.windows(2).all(|pair| pair[1] >= pair[0] + Duration::from_secs(1)), "{times:?}");
        // A restarted sidecar continues after the time on disk.
        let mut restarted = Materializer::new(dir.path(), "eu-west").expect("new");
        let view = View::restored(4, "cluster".to_owned(), [record("acme", 4, r#"{"tenant":"acme"}"#)], "eu-west");
        restarted.sync(&view).expect("sync");
        assert!(stat().modified().expect("mtime") >= times[2] + Duration::from_secs(1));
    }
}
