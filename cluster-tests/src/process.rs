//! Child processes a suite starts by hand (a sidecar, an api-node): killed
//! when the guard drops, so a failing test leaves nothing running.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Owns a child process. On drop (a failing test), SIGTERM so that it can
/// stop what it started in turn, then kill -9 after a short grace.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }

    /// The child, while the guard owns it.
    pub fn child(&mut self) -> Option<&mut Child> {
        self.0.as_mut()
    }

    /// kill -9, and reap it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let mut child = self.0.take().ok_or_else(|| anyhow::anyhow!("already stopped"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// SIGTERM, then the exit status; an error (and kill -9) if it takes
    /// more than 30 s.
    pub fn terminate(mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.0.take().ok_or_else(|| anyhow::anyhow!("already stopped"))?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("did not exit within 30 s of SIGTERM")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else { return };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
