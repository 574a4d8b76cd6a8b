//! Output and device write safety (issue 11): no writer replaces an existing
//! file, two writers racing for one path cannot both win, signals and SIGKILL
//! leave no temporary file and no half-written destination, undo files are
//! verified completely before the first write, and mounted devices (or files
//! backing a mounted loop device) are never written.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_rdprescue");

fn work(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("write-safety-{test}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A private copy of testdata/demo.vhdx (80 MiB virtual, 27 MB on disk).
fn demo(dir: &Path) -> PathBuf {
    let p = dir.join("d.vhdx");
    std::fs::copy(testdata().join("demo.vhdx"), &p).unwrap();
    p
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).out().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Names of rdprescue temporary files in `dir`.
fn temps(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.contains(".rdprescue-") && n.ends_with(".tmp")).collect();
    v.sort();
    v
}

fn fix_cmd(input: &Path, out: &Path, named: bool) -> Command {
    let mut c = Command::new(BIN);
    c.args(["fix", s(input), "--profile", "reset-rdp", "--out", s(out)]);
    if named {
        c.env("RDPRESCUE_NO_TMPFILE", "1");
    }
    c
}

// ------------------------------------------------------------ 1: reg export

#[test]
fn reg_export_never_overwrites_not_even_its_input() {
    let d = work("export");
    let img = demo(&d);
    let before = sha256_file(&img);
    let o = run(&["reg", "export", s(&img), r"HKLM\SYSTEM\Select", "-o", s(&img)]);
    assert_clean_error(&o, "export onto its own input");
    assert_eq!(sha256_file(&img), before, "the input image was overwritten");
    let other = d.join("old.reg");
    std::fs::write(&other, b"precious").unwrap();
    let o = run(&["reg", "export", s(&img), r"HKLM\SYSTEM\Select", "-o", s(&other)]);
    assert_clean_error(&o, "export onto an existing file");
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&other).unwrap(), b"precious");
    let new = d.join("new.reg");
    let o = run(&["reg", "export", s(&img), r"HKLM\SYSTEM\Select", "-o", s(&new), "--utf8"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&new).unwrap().starts_with("Windows Registry Editor"));
    assert!(temps(&d).is_empty(), "{:?}", temps(&d));
    assert_eq!(sha256_file(&img), before);
}

// ------------------------------------------------------------ 2: racing writers

#[test]
fn two_fixes_to_one_out_exactly_one_wins() {
    let d = work("race");
    let img = demo(&d);
    let before = sha256_file(&img);
    for round in 0..20 {
        // Odd rounds use the named temporary (no O_TMPFILE) path.
        let named = round % 2 == 1;
        let out = d.join(format!("out{round}.vhdx"));
        let a = fix_cmd(&img, &out, named).stdout(Stdio::piped()).stderr(Stdio::piped()).start().unwrap();
        let b = fix_cmd(&img, &out, named).stdout(Stdio::piped()).stderr(Stdio::piped()).start().unwrap();
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let mut codes = [a.status.code(), b.status.code()];
        codes.sort();
        assert_eq!(codes, [Some(0), Some(2)], "round {round} (named={named}): both or neither won:\nA: {}{}\nB: {}{}", stdout(&a), stderr(&a), stdout(&b), stderr(&b));
        let loser = if a.status.code() == Some(2) { &a } else { &b };
        assert_clean_error(loser, "the losing writer");
        let o = run(&["inspect", s(&out)]);
        assert_eq!(o.status.code(), Some(0), "round {round}: the winner's output is not a fixed image: {}{}", stdout(&o), stderr(&o));
        assert!(temps(&d).is_empty(), "round {round}: {:?}", temps(&d));
    }
    assert_eq!(sha256_file(&img), before);
}

/// Start `cmd` with the pause hook, wait until it is paused before commit
/// (its output complete and verified), and return it.
fn start_paused(mut cmd: Command) -> (Child, BufReader<std::process::ChildStderr>) {
    let mut child = cmd.env("RDPRESCUE_PAUSE_BEFORE_COMMIT", "1").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).start().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            let st = child.wait().unwrap();
            panic!("the writer ended ({st}) without pausing before commit: {seen}");
        }
        if line.contains("paused before commit") {
            return (child, err);
        }
        seen.push_str(&line);
    }
}

fn resume(mut child: Child, mut err: BufReader<std::process::ChildStderr>) -> (Option<i32>, String) {
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    (child.wait().unwrap().code(), rest)
}

#[test]
fn a_file_created_at_out_meanwhile_is_never_replaced() {
    let d = work("appeared");
    let img = demo(&d);
    let hive = d.join("SYSTEM");
    let o = run(&["cat", s(&img), r"Windows\System32\config\SYSTEM"]);
    assert_eq!(o.status.code(), Some(0));
    std::fs::write(&hive, &o.stdout).unwrap();
    let mut cases: Vec<(String, Command)> = Vec::new();
    for named in [false, true] {
        cases.push((format!("fix-full-named{named}.vhdx"), fix_cmd(&img, &d.join(format!("fix-full-named{named}.vhdx")), named)));
    }
    let mut c = fix_cmd(&img, &d.join("fix-child.avhdx"), false);
    c.arg("--diff-child");
    cases.push(("fix-child.avhdx".into(), c));
    let mut c = Command::new(BIN);
    c.args(["reg", "set", s(&hive), r"HKLM\SYSTEM\Select", "-v", "X", "-t", "REG_DWORD", "-d", "1", "--out", s(&d.join("hive.out"))]);
    cases.push(("hive.out".into(), c));
    let mut c = Command::new(BIN);
    c.args(["reg", "export", s(&img), r"HKLM\SYSTEM\Select", "-o", s(&d.join("x.reg"))]);
    cases.push(("x.reg".into(), c));
    for (name, cmd) in cases {
        let out = d.join(&name);
        let (child, err) = start_paused(cmd);
        std::fs::write(&out, b"someone else's file").unwrap();
        let (code, rest) = resume(child, err);
        assert_eq!(code, Some(2), "{name}: {rest}");
        assert!(rest.contains("appeared while rdprescue was writing"), "{name}: {rest}");
        assert_eq!(std::fs::read(&out).unwrap(), b"someone else's file", "{name}: replaced");
        assert!(temps(&d).is_empty(), "{name}: {:?}", temps(&d));
    }
}

// ------------------------------------------------------------ 3: signals and crashes

#[test]
#[cfg_attr(not(unix), ignore = "Unix signals (SIGINT/SIGTERM/SIGHUP): Windows has none")]
fn signals_leave_no_temporary_file() {
    let d = work("signals");
    let img = demo(&d);
    for named in [true, false] {
        for (sig, num) in [("INT", 2), ("TERM", 15), ("HUP", 1)] {
            let out = d.join(format!("out-{sig}-{named}.vhdx"));
            let (child, _err) = start_paused(fix_cmd(&img, &out, named));
            // Paused with the whole output written: a named temporary is there, an O_TMPFILE is not.
            assert_eq!(temps(&d).len(), usize::from(named), "{sig} named={named}: {:?}", temps(&d));
            let k = Command::new("kill").args(["-s", sig, &child.id().to_string()]).status().unwrap();
            assert!(k.success());
            let mut child = child;
            // Keep stdin open: Child::wait would close it, which resumes the writer.
            let _stdin = child.stdin.take();
            let st = wait_at_most(&mut child, 20);
            assert_eq!(st.code(), Some(128 + num), "SIG{sig} named={named}: {st}");
            assert!(temps(&d).is_empty(), "SIG{sig} named={named}: left {:?}", temps(&d));
            assert!(!out.exists(), "SIG{sig} named={named}: destination published");
        }
    }
}

fn wait_at_most(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let t = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed().as_secs() >= secs {
            let _ = child.kill();
            panic!("still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// xorshift64*: a reproducible pseudo-random sequence for the kill points.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
#[cfg_attr(not(unix), ignore = "SIGKILL (Unix): on Windows a killed run exits 1, which the test cannot tell from a failed one")]
fn sigkill_at_random_points_is_crash_consistent() {
    let d = work("sigkill");
    let img = demo(&d);
    let input = sha256_file(&img);
    // How long one run takes here, to spread the kills over all of it.
    let out = d.join("out.vhdx");
    let t = std::time::Instant::now();
    let o = fix_cmd(&img, &out, false).out().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let span = (t.elapsed().as_micros() as u64 * 13 / 10).max(1000);
    std::fs::remove_file(&out).unwrap();
    let seed = std::env::var("RDPRESCUE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    eprintln!("sigkill: seed {seed} (RDPRESCUE_TEST_SEED reproduces), kills spread over {span} us");
    let mut rng = seed;
    let mut killed_pids = Vec::new();
    let (mut completed, mut killed, mut published_then_killed) = (0, 0, 0);
    for i in 0..50 {
        // Even runs use the named temporary, odd runs O_TMPFILE.
        let named = i % 2 == 0;
        let mut child = fix_cmd(&img, &out, named).stdout(Stdio::null()).stderr(Stdio::null()).start().unwrap();
        std::thread::sleep(std::time::Duration::from_micros(next(&mut rng) % span));
        let _ = child.kill();
        let st = child.wait().unwrap();
        match st.code() {
            Some(0) => {
                completed += 1;
                assert!(out.exists(), "run {i}: exit 0 without a destination");
            }
            Some(c) => panic!("run {i}: exit {c}"),
            None => {
                killed += 1;
                killed_pids.push(child.id());
                if out.exists() {
                    published_then_killed += 1;
                }
            }
        }
        if out.exists() {
            // Whatever is at the destination is complete.
            let o = run(&["inspect", s(&out)]);
            assert_eq!(o.status.code(), Some(0), "run {i} (named={named}, {st}): incomplete destination: {}{}", stdout(&o), stderr(&o));
            std::fs::remove_file(&out).unwrap();
        }
        // Only killed runs may have left a temporary (it goes at the next create).
        for t in temps(&d) {
            let pid: u32 = t.trim_start_matches(".out.vhdx.rdprescue-").trim_end_matches(".tmp").parse().unwrap();
            assert!(killed_pids.contains(&pid), "run {i}: {t} of a run that was not killed");
        }
    }
    eprintln!("sigkill: {completed} completed, {killed} killed ({published_then_killed} after publishing)");
    // The next run removes the temporaries of dead runs and leaves none of its own.
    let o = fix_cmd(&img, &out, true).out().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(temps(&d).is_empty(), "left behind: {:?}", temps(&d));
    assert_eq!(sha256_file(&img), input);
}

// ------------------------------------------------------------ 4: undo files

/// The virtual disk of testdata/demo.vhdx as a raw image (80 MiB), made once
/// per test binary; each test copies it.
fn demo_raw() -> &'static Path {
    static RAW: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    RAW.get_or_init(|| {
        let dir = work("demo-raw");
        let img = rdprescue::image::open(&testdata().join("demo.vhdx")).unwrap();
        let p = dir.join("demo.raw");
        let f = std::fs::File::create(&p).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < img.disk.len() {
            let n = buf.len().min((img.disk.len() - off) as usize);
            img.disk.read_at(off, &mut buf[..n]).unwrap();
            write_all_at(&f, &buf[..n], off).unwrap();
            off += n as u64;
        }
        p
    })
}

/// A raw disk fixed in place: (disk, undo file, SHA-256 before, after).
fn fixed_in_place(d: &Path, tag: &str) -> (PathBuf, PathBuf, String, String) {
    let dev = d.join(format!("{tag}.raw"));
    std::fs::copy(demo_raw(), &dev).unwrap();
    let original = sha256_file(&dev);
    let undo = d.join(format!("{tag}.undo"));
    let o = run(&["fix", s(&dev), "--profile", "reset-rdp", "--in-place", "--undo", s(&undo)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let fixed = sha256_file(&dev);
    assert_ne!(fixed, original);
    (dev, undo, original, fixed)
}

#[test]
fn fix_in_place_then_undo_restores_every_byte() {
    let d = work("undo-round-trip");
    let (dev, undo, original, _) = fixed_in_place(&d, "rt");
    let text = std::fs::read_to_string(&undo).unwrap();
    assert!(text.contains("\"format\": \"rdprescue-undo/2\""), "{text:.200}");
    let o = run(&["undo", s(&dev), s(&undo)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sha256_file(&dev), original, "undo restores every byte");
    // Again: the disk already holds the original bytes, nothing to do.
    let o = run(&["undo", s(&dev), s(&undo)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sha256_file(&dev), original);
    assert!(temps(&d).is_empty());
}

#[test]
fn a_damaged_undo_file_or_another_disk_is_refused_before_any_write() {
    let d = work("undo-damage");
    type Damage = fn(&mut String);
    let cases: [(&str, Damage); 4] = [
        ("a flipped digit", |b| {
            let c = if b.starts_with('0') { "1" } else { "0" };
            b.replace_range(0..1, c);
        }),
        ("a '+' sign", |b| {
            let i = (0..b.len()).step_by(2).find(|i| &b[*i..*i + 1] != "0").unwrap();
            b.replace_range(i..i + 1, "+");
        }),
        ("a non-ASCII char", |b| b.replace_range(1..3, "é")),
        ("upper-case hex that changes the checksum", |b| *b = b.to_uppercase()),
    ];
    for (what, damage) in cases {
        let (dev, undo, _, fixed) = fixed_in_place(&d, &what.replace([' ', '\''], "_"));
        let mut j: serde_json::Value = serde_json::from_slice(&std::fs::read(&undo).unwrap()).unwrap();
        let mut b = j["ranges"][0]["before"].as_str().unwrap().to_string();
        damage(&mut b);
        j["ranges"][0]["before"] = b.into();
        std::fs::write(&undo, serde_json::to_vec_pretty(&j).unwrap()).unwrap();
        let o = run(&["undo", s(&dev), s(&undo)]);
        assert_clean_error(&o, what);
        assert_eq!(sha256_file(&dev), fixed, "{what}: the disk was written");
        let o = run(&["undo", s(&dev), s(&undo), "--force"]);
        assert_clean_error(&o, what);
        assert_eq!(sha256_file(&dev), fixed, "{what} with --force: the disk was written");
    }
    // Truncated anywhere.
    let (dev, undo, _, fixed) = fixed_in_place(&d, "truncated");
    let full = std::fs::read(&undo).unwrap();
    for cut in [0, 1, full.len() / 3, full.len() / 2, full.len() - 3] {
        std::fs::write(&undo, &full[..cut]).unwrap();
        let o = run(&["undo", s(&dev), s(&undo)]);
        assert_clean_error(&o, &format!("truncated to {cut}"));
        assert_eq!(sha256_file(&dev), fixed);
    }
    // A version-1 file.
    std::fs::write(&undo, String::from_utf8(full.clone()).unwrap().replace("rdprescue-undo/2", "rdprescue-undo/1")).unwrap();
    let o = run(&["undo", s(&dev), s(&undo)]);
    assert_clean_error(&o, "v1");
    assert!(stderr(&o).contains("rdprescue-undo/1 is refused"), "{}", stderr(&o));
    std::fs::write(&undo, &full).unwrap();
    // Another disk of the same size, holding the fixed bytes, with another
    // disk signature: not the disk the file was made for.
    let other = d.join("other.raw");
    std::fs::copy(&dev, &other).unwrap();
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&other).unwrap();
    let mut x = [0u8];
    read_exact_at(&f, &mut x, 440).unwrap();
    write_all_at(&f, &[x[0] ^ 1], 440).unwrap();
    drop(f);
    let other_sha = sha256_file(&other);
    let o = run(&["undo", s(&other), s(&undo)]);
    assert_clean_error(&o, "wrong device");
    assert!(stderr(&o).contains("not the same disk"), "{}", stderr(&o));
    assert_eq!(sha256_file(&other), other_sha);
    // A disk of another size.
    let small = d.join("small.raw");
    std::fs::write(&small, vec![0u8; 1 << 20]).unwrap();
    let o = run(&["undo", s(&small), s(&undo)]);
    assert_clean_error(&o, "smaller device");
    // The intact file still works on the right disk.
    let o = run(&["undo", s(&dev), s(&undo)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_ne!(sha256_file(&dev), fixed);
}

// ------------------------------------------------------------ 5: mounted devices

fn sh(cmd: &str, args: &[&str]) -> Result<String, String> {
    match Command::new(cmd).args(args).out() {
        Ok(o) if o.status.success() => Ok(stdout(&o)),
        Ok(o) => Err(format!("{cmd} {args:?}: {}", stderr(&o).trim())),
        Err(e) => Err(format!("{cmd}: {e}")),
    }
}

/// Unmounts (and so detaches the autoclear loop device) on drop.
struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[cfg_attr(not(all(root, tool_mke2fs, tool_losetup, tool_mount, tool_umount)), ignore = "needs root, mke2fs, losetup, mount (Linux loop devices)")]
fn a_raw_image_behind_a_mounted_loop_device_is_never_written() {
    let root = sh("id", &["-u"]).is_ok_and(|u| u.trim() == "0");
    assert!(root, "not root: the test must be marked ignored (build.rs: root)");
    for t in ["mke2fs", "losetup", "mount", "umount"] {
        require(t);
    }
    let d = work("loop");
    let dev = d.join("disk.raw");
    std::fs::copy(demo_raw(), &dev).unwrap();
    // Partition 4 of the demo disk (the 4 MiB recovery partition) becomes an
    // ext2 file system, mounted straight from the image file with an offset
    // loop, as `mount -o loop,offset=...` does. The fix writes partition 3.
    let (offset, size) = (0x4b0_0000u64, 4u64 << 20);
    if let Err(e) = sh("mke2fs", &["-q", "-t", "ext2", "-F", "-E", &format!("offset={offset}"), s(&dev), "4096"]) {
        eprintln!("SKIP: real loop-device test: {e}");
        return;
    }
    let mnt = d.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    if let Err(e) = sh("mount", &["-o", &format!("ro,loop,offset={offset},sizelimit={size}"), s(&dev), s(&mnt)]) {
        eprintln!("SKIP: real loop-device test: cannot mount a loop device here: {e}");
        return;
    }
    let guard = Mounted(mnt.clone());
    let before = sha256_file(&dev);
    let undo = d.join("u.undo");
    let o = run(&["fix", s(&dev), "--profile", "reset-rdp", "--in-place", "--undo", s(&undo)]);
    assert_clean_error(&o, "in-place fix of a file behind a mounted loop device");
    assert!(stderr(&o).contains("in use") && stderr(&o).contains(&format!("offset {offset}")), "{}", stderr(&o));
    assert_eq!(sha256_file(&dev), before, "the image behind the mounted loop device was written");
    assert!(!undo.exists());
    // Through another name (a hard link) too.
    let link = d.join("link.raw");
    std::fs::hard_link(&dev, &link).unwrap();
    let o = run(&["fix", s(&link), "--profile", "reset-rdp", "--in-place", "--undo", s(&undo)]);
    assert_clean_error(&o, "hard link");
    assert_eq!(sha256_file(&dev), before);
    // The mounted loop device itself: undo refuses it (an undo file that
    // would zero the ext2 superblock, made for this device).
    let loopdev = sh("losetup", &["-j", s(&dev)]).unwrap();
    let loopdev = loopdev.split(':').next().unwrap().trim().to_string();
    assert!(loopdev.starts_with("/dev/loop"), "{loopdev}");
    let img = rdprescue::image::open(Path::new(&loopdev)).unwrap();
    let mut current = vec![0u8; 1024];
    img.disk.read_at(1024, &mut current).unwrap();
    let mut head = vec![0u8; (1u64 << 20).min(img.disk.len()) as usize];
    img.disk.read_at(0, &mut head).unwrap();
    head[1024..2048].fill(0);
    use sha2::Digest;
    let u = rdprescue::repair::undo::Undo {
        device_path: loopdev.clone(),
        device_size: img.disk.len(),
        head_sha256: sha2::Sha256::digest(&head).into(),
        ranges: vec![rdprescue::repair::undo::Range { offset: 1024, before: vec![0; 1024], after: current }],
    };
    drop(img);
    let uf = d.join("loop.undo");
    std::fs::write(&uf, u.to_bytes().unwrap()).unwrap();
    let o = run(&["undo", &loopdev, s(&uf)]);
    assert_clean_error(&o, "undo on a mounted loop device");
    assert!(stderr(&o).contains("in use") || stderr(&o).contains("busy"), "{}", stderr(&o));
    assert_eq!(sha256_file(&dev), before);
    drop(guard);
    // Unmounted: the same in-place fix goes through.
    let o = run(&["fix", s(&dev), "--profile", "reset-rdp", "--in-place", "--undo", s(&undo)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
