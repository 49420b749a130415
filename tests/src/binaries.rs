//! The workspace's binaries (`fedq`, `fedq-node`, `fedq-coordinator`,
//! `fedq-demo`), for tests that run them as real processes. They are built
//! beside the test executables by `cargo test --workspace`.

use std::path::{Path, PathBuf};

/// The path of binary `name` in this build's target directory.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| anyhow::anyhow!("unexpected test executable path {}", exe.display()))?;
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: run `cargo test --workspace` (it builds every binary)",
        path.display()
    );
    Ok(path)
}

/// A command running binary `name`.
pub fn command(name: &str) -> anyhow::Result<std::process::Command> {
    Ok(std::process::Command::new(binary(name)?))
}

/// Runs `command` to completion; its stdout, or an error with both outputs
/// when it did not exit 0.
pub fn run_ok(command: &mut std::process::Command) -> anyhow::Result<String> {
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// The `listen` address a party's config file (`node.toml`,
/// `coordinator.toml`) gives, where its server can be reached.
pub fn listen_address(config: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(config)?;
    text.lines()
        .find(|l| l.starts_with("listen"))
        .and_then(|l| l.split('"').nth(1))
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no listen address in {}", config.display()))
}

/// A running command whose standard output is JSON, one object per line
/// (`fedq alerts --follow --json`): read as the lines come, killed on drop.
pub struct JsonLines {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl JsonLines {
    /// Starts `command` with its output piped here and its errors dropped.
    pub fn spawn(command: &mut std::process::Command) -> anyhow::Result<Self> {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no standard output"))?;
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// The first object `wanted` accepts, if one comes before `deadline`.
    pub fn first(
        &self,
        deadline: std::time::Instant,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<Option<serde_json::Value>> {
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let object: serde_json::Value = serde_json::from_str(&line)?;
                    if wanted(&object) {
                        return Ok(Some(object));
                    }
                }
                Err(_) => return Ok(None),
            }
        }
    }
}

impl Drop for JsonLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
