//! How fast `hull_diff::apply` unpacks a layer, next to GNU `tar -x` of the
//! same bytes. Run as root, in release:
//!
//! ```sh
//! cargo run --release -p hull-diff --example apply_speed            # a layer made from /usr, 200 MB
//! cargo run --release -p hull-diff --example apply_speed -- 500     # ... of 500 MB
//! cargo run --release -p hull-diff --example apply_speed -- bomb    # 100k empty files
//! cargo run --release -p hull-diff --example apply_speed -- 200 tmpfs  # on a tmpfs: CPU only
//! ```
//!
//! It writes the layer (plain, `gzip -6`, `zstd -3`) under /tmp, applies each with
//! hull and with `tar -x --numeric-owner` into fresh directories, prints
//! MB/s of uncompressed data (best of 3), and removes everything it made.

use hull_diff::{apply, ApplyOptions, Whiteouts};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "200".into());
    let tmpfs = std::env::args().nth(2).as_deref() == Some("tmpfs");
    let work = std::env::temp_dir().join(format!("hull-apply-speed-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let _cleanup = Cleanup(work.clone(), tmpfs);
    if tmpfs {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8g", "hull-bench"])
            .arg(&work)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs on {}", work.display());
    }
    let tar_path = work.join("layer.tar");
    if arg == "bomb" {
        write_bomb(&tar_path);
    } else {
        let mb: u64 = arg.parse().expect("size in MB, or `bomb`");
        write_from_usr(&tar_path, mb << 20);
    }
    let gz_path = work.join("layer.tar.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -6 -c {} > {}",
            tar_path.display(),
            gz_path.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let zst_path = work.join("layer.tar.zst");
    let status = Command::new("zstd")
        .args(["-q", "-3", "-o"])
        .arg(&zst_path)
        .arg(&tar_path)
        .status()
        .unwrap();
    assert!(status.success());
    let size = std::fs::metadata(&tar_path).unwrap().len();
    let gz_size = std::fs::metadata(&gz_path).unwrap().len();
    println!(
        "layer: {:.1} MB uncompressed, {:.1} MB gzip",
        mb(size),
        mb(gz_size)
    );
    for (name, path, mt, tar_flag) in [
        (
            "plain",
            &tar_path,
            "application/vnd.oci.image.layer.v1.tar",
            "-xf",
        ),
        (
            "gzip",
            &gz_path,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "-xzf",
        ),
        (
            "zstd",
            &zst_path,
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "--zstd -xf",
        ),
    ] {
        let hull = best_of(3, &work, |dest| {
            let opts = ApplyOptions {
                whiteouts: Whiteouts::Remove,
                parents: vec![],
            };
            apply(File::open(path).unwrap(), mt, dest, &opts).unwrap();
        });
        let tar = best_of(3, &work, |dest| {
            let st = Command::new("tar")
                .args(["--numeric-owner", "--xattrs", "--xattrs-include=*"])
                .args(tar_flag.split(' '))
                .arg(path)
                .arg("-C")
                .arg(dest)
                .status()
                .unwrap();
            assert!(st.success());
        });
        println!(
            "{name:5}: hull {:7.1} MB/s ({:.2?})   tar -x {:7.1} MB/s ({:.2?})",
            mb(size) / hull.as_secs_f64(),
            hull,
            mb(size) / tar.as_secs_f64(),
            tar
        );
    }
}

fn mb(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// Fastest of `n` runs, each into a new directory (the page cache is warm
/// for both tools alike; the time includes a final sync of the data).
fn best_of(n: usize, work: &Path, mut run: impl FnMut(&Path)) -> Duration {
    let mut best = Duration::MAX;
    for i in 0..n {
        let dest = work.join(format!("out-{i}"));
        std::fs::create_dir_all(&dest).unwrap();
        let start = Instant::now();
        run(&dest);
        // SAFETY: sync has no preconditions.
        unsafe { libc::sync() };
        best = best.min(start.elapsed());
        std::fs::remove_dir_all(&dest).unwrap();
        // SAFETY: as above.
        unsafe { libc::sync() };
    }
    best
}

/// Regular files and symlinks from /usr, in directory order, until `limit`
/// bytes of file data.
fn write_from_usr(out: &Path, limit: u64) {
    let mut b = tar::Builder::new(File::create(out).unwrap());
    b.follow_symlinks(false);
    let mut total = 0u64;
    let mut stack: Vec<PathBuf> = vec!["/usr".into()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(r) => r.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(_) => continue,
        };
        entries.sort();
        let rel = dir.strip_prefix("/").unwrap();
        b.append_dir(rel, &dir).unwrap();
        for p in entries {
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
            } else if (m.is_file() || m.file_type().is_symlink())
                && total < limit
                && b.append_path_with_name(&p, p.strip_prefix("/").unwrap())
                    .is_ok()
            {
                total += m.len();
            }
        }
        if total >= limit {
            break;
        }
    }
    b.finish().unwrap();
}

fn write_bomb(out: &Path) {
    let mut b = tar::Builder::new(File::create(out).unwrap());
    for d in 0..100 {
        for f in 0..1000 {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(0);
            h.set_mtime(1_600_000_000);
            b.append_data(&mut h, format!("bomb/{d}/{f}"), std::io::empty())
                .unwrap();
        }
    }
    b.finish().unwrap();
}

/// Removes the work dir (unmounting our tmpfs first) at the end. (The
/// release profile aborts on panic, skipping this: a failed run leaves
/// /tmp/hull-apply-speed-PID, mounted with `tmpfs`, to remove by hand.)
struct Cleanup(PathBuf, bool);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.1 {
            let _ = Command::new("umount").arg(&self.0).status();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
