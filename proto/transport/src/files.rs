//! Files only their owner may read: keys, stores, logs, checkpoints and
//! Parquet tables are created 0600, in directories created 0700, whatever the
//! process umask. One helper, so no party writes a secret with `File::create`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Tightens an existing file to 0600 (a file made earlier, or by a tool
/// running under a looser umask).
pub fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Opens `path` for writing, created 0600 (parents 0700), emptied.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let file = options().open(path)?;
    restrict(path)?;
    Ok(file)
}

/// Creates `path` as a new private file; fails if it exists (for temporary
/// files that are renamed into place).
pub fn create_new_private(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Makes sure `path` exists as a private file without changing its contents
/// (SQLite then opens it, and gives its `-wal` and `-shm` files its mode).
///
/// An existing file is never opened here, only tightened: closing any
/// descriptor of a file drops every POSIX lock that the process holds on
/// it, SQLite's included. Opening a second connection to a store while a
/// first one read it would otherwise leave that reader unlocked, and a
/// writer in another process (`fedq-node import` beside a serving node)
/// could checkpoint under it: "disk I/O error (short read)", or worse.
pub fn touch_private(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    // Creating does open (and close) the new file: one creation at a time in
    // this process, so that another thread that finds the file already there
    // cannot lock it before the creator's descriptor is closed.
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    match create_new_private(path) {
        Ok(file) => {
            drop(file);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => restrict(path),
        Err(e) => Err(e),
    }
}

/// Writes `contents` to a private file and flushes it to disk.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = create_private(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_0600_in_0700_dirs_even_over_an_existing_loose_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/secret");
        write_private(&path, b"x").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&tmp.path().join("a/b")), 0o700);
        let loose = tmp.path().join("loose");
        std::fs::write(&loose, b"y").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        touch_private(&loose).unwrap();
        assert_eq!(mode(&loose), 0o600);
        assert_eq!(std::fs::read(&loose).unwrap(), b"y");
    }
}

/// Refuses a secret that others on this machine can read: a signing or TLS
/// key with group or world bits set is as good as shared.
pub fn check_private(path: &Path) -> Result<(), String> {
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} is readable by others (mode {mode:04o}); run chmod 600 on it",
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    Ok(())
}
