//! The model served over FUSE (pure-Rust `fuser`, mounted with mount(2) as
//! root). Every request takes the model's lock, so operations are atomic
//! and ordered as the kernel sent them; a frozen model answers EIO.
//!
//! Opens ask the kernel to keep its page cache (only this filesystem
//! changes the files, through the kernel): SQLite's `-shm` is a shared
//! mapping, and dropping the cache at each open would break its coherence.
//! Locks (fcntl, flock) are left to the kernel: FUSE without lock support
//! keeps them locally, which is right for one machine.

use crate::model::{Model, Node, Res};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, MountOption, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

const TTL: Duration = Duration::from_secs(1);

/// The model behind a mount.
pub type Shared = Arc<Mutex<Model>>;

pub fn lock(m: &Shared) -> MutexGuard<'_, Model> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

pub struct PowerFs {
    model: Shared,
    /// Size reported by statfs.
    capacity: u64,
    /// Open directories: the listing as of `opendir`, so that entries
    /// added or removed meanwhile never make `readdir` repeat or skip the
    /// others (offsets index this snapshot).
    listings: Mutex<(u64, HashMap<u64, Listing>)>,
}

type Listing = Vec<(u64, bool, std::ffi::OsString)>;

/// Mounts `model` at `at`; dropping the session unmounts.
pub fn mount(model: Shared, at: &Path) -> std::io::Result<fuser::BackgroundSession> {
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        MountOption::FSName("keepd-powercut".into()),
        MountOption::Subtype("powercut".into()),
        MountOption::RW,
        MountOption::NoAtime,
    ];
    cfg.n_threads = Some(2);
    fuser::spawn_mount(
        PowerFs {
            model,
            capacity: 64 << 30,
            listings: Mutex::new((1, HashMap::new())),
        },
        at,
        &cfg,
    )
}

/// The FUSE connection number of the filesystem mounted at `at` (its
/// directory under /sys/fs/fuse/connections).
pub fn connection(at: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(at).ok().map(|m| {
        let dev = m.dev();
        (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev))
    })
}

/// Unmounts and waits for the session's threads, bounded: a reader of the
/// FUSE device sometimes stays blocked after the unmount (the connection
/// never told it is gone), which would hang the run. After `wait`, the
/// connection is aborted through the fuse control filesystem (mounted at
/// /sys/fs/fuse/connections if it isn't), which ends every reader.
/// `conn`: the mount's connection number, from `connection` right after
/// the mount (asking later could block on a frozen filesystem).
pub fn unmount(
    session: fuser::BackgroundSession,
    at: &Path,
    conn: Option<u64>,
    wait: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(session.umount_and_join());
    });
    match rx.recv_timeout(wait) {
        Ok(r) => return r,
        Err(_) => eprintln!(
            "  note: the FUSE session at {} did not end {:?} after its unmount; aborting its connection",
            at.display(),
            wait
        ),
    }
    let ctl = Path::new("/sys/fs/fuse/connections");
    if std::fs::read_dir(ctl)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
    {
        let _ = std::process::Command::new("mount")
            .args(["-t", "fusectl", "none"])
            .arg(ctl)
            .status();
    }
    if let Some(c) = conn {
        let _ = std::fs::write(ctl.join(c.to_string()).join("abort"), "1");
    }
    rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
        std::io::Error::other(format!(
            "the FUSE session at {} would not end",
            at.display()
        ))
    })?
}

fn attr(ino: u64, n: &Node) -> FileAttr {
    let size = n.size();
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: n.attrs.atime,
        mtime: n.attrs.mtime,
        ctime: n.attrs.ctime,
        crtime: n.attrs.ctime,
        kind: if n.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: n.attrs.perm as u16,
        nlink: n.nlink.max(1),
        uid: n.attrs.uid,
        gid: n.attrs.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn err(e: i32) -> Errno {
    Errno::from_i32(e)
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl PowerFs {
    fn m(&self) -> MutexGuard<'_, Model> {
        lock(&self.model)
    }

    fn entry(&self, r: Res<u64>, reply: ReplyEntry) {
        let m = self.m();
        match r.and_then(|ino| Ok((ino, m.node(ino)?))) {
            Ok((ino, n)) => reply.entry(&TTL, &attr(ino, n), Generation(0)),
            Err(e) => reply.error(err(e)),
        }
    }
}

impl fuser::Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.m().lookup(parent.0, name);
        self.entry(r, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let m = self.m();
        match m.node(ino.0) {
            Ok(n) => reply.attr(&TTL, &attr(ino.0, n)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut m = self.m();
        let r = (|| {
            if let Some(s) = size {
                m.truncate(ino.0, s)?;
            }
            m.set_attrs(ino.0, mode, uid, gid, atime.map(time), mtime.map(time))?;
            Ok(attr(ino.0, m.node(ino.0)?))
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(err(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let r = self.m().create(parent.0, name, mode, req.uid(), req.gid());
        self.entry(r, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.m().mkdir(parent.0, name, mode, req.uid(), req.gid());
        self.entry(r, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.m().unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.m().rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        match self
            .m()
            .rename(parent.0, name, newparent.0, newname, noreplace)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = self.m().link(ino.0, newparent.0, newname).map(|()| ino.0);
        self.entry(r, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let m = self.m();
        match m.node(ino.0) {
            Ok(_) => {
                drop(m);
                if flags.0 & libc::O_TRUNC != 0 {
                    if let Err(e) = self.m().truncate(ino.0, 0) {
                        return reply.error(err(e));
                    }
                }
                reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE)
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.m().read(ino.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(err(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.m().write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(err(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        if self.m().frozen {
            return reply.error(Errno::EIO);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.m().fsync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let list = self.m().readdir(ino.0);
        match list {
            Ok(list) => {
                let mut l = self.listings.lock().unwrap_or_else(|p| p.into_inner());
                let fh = l.0;
                l.0 += 1;
                l.1.insert(fh, list);
                reply.opened(FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if self.m().frozen {
            return reply.error(Errno::EIO);
        }
        let l = self.listings.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = l.1.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (child, is_dir, name)) in list.iter().enumerate().skip(offset as usize) {
            let kind = if *is_dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(*child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let mut l = self.listings.lock().unwrap_or_else(|p| p.into_inner());
        l.1.remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.m().fsync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let m = self.m();
        if m.frozen {
            return reply.error(Errno::EIO);
        }
        let bsize = 4096u64;
        let blocks = self.capacity / bsize;
        let used = m.used_bytes().div_ceil(bsize).min(blocks);
        reply.statfs(
            blocks,
            blocks - used,
            blocks - used,
            1 << 20,
            1 << 19,
            bsize as u32,
            255,
            bsize as u32,
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut m = self.m();
        let r = match m.lookup(parent.0, name) {
            Ok(_) if flags & libc::O_EXCL != 0 => Err(libc::EEXIST),
            Ok(ino) => {
                if flags & libc::O_TRUNC != 0 {
                    m.truncate(ino, 0).map(|()| ino)
                } else {
                    Ok(ino)
                }
            }
            Err(libc::ENOENT) => m.create(parent.0, name, mode, req.uid(), req.gid()),
            Err(e) => Err(e),
        };
        match r.and_then(|ino| Ok(attr(ino, m.node(ino)?))) {
            Ok(a) => reply.created(
                &TTL,
                &a,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(err(e)),
        }
    }
}

/// Whether this machine can mount FUSE filesystems here: `/dev/fuse`
/// present and we are root (the direct mount(2) path).
pub fn available() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing (modprobe fuse)".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("mounting FUSE without fusermount needs root".into());
    }
    if !std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.trim_end().ends_with("\tfuse") || l.trim() == "fuse")
    {
        return Err("the kernel has no fuse filesystem (/proc/filesystems)".into());
    }
    Ok(())
}
