//! What a power cut does to a filesystem, as a state machine (no FUSE here:
//! `fuse.rs` serves it; the unit tests below drive it directly).
//!
//! Every file keeps two contents: what processes see now (`data`) and what
//! is on the medium (`synced`, set by `fsync`/`fdatasync`). Every directory
//! keeps three entry tables: now (`entries`), as of its last `fsync`
//! (`synced`), and as of the last journal commit (`journaled`: see below).
//! Nothing written is durable until a sync makes it so. At a cut, a new
//! filesystem is built from what was durable, in one of two ways chosen
//! per cut:
//!
//! - [`Cut::Strict`] (POSIX's promise, and LazyFS's default): file data not
//!   synced is gone; a directory's entries are those of its last `fsync`
//!   — a create, link, unlink or rename not followed by an `fsync` of the
//!   directory never happened. A new directory whose entry in its parent
//!   was not synced is gone with everything in it.
//! - [`Cut::Writeback`] (how ext4/XFS-like filesystems actually fail):
//!   metadata operations are journaled in order and any `fsync` commits the
//!   whole journal so far; at the cut a random prefix of the operations
//!   since the last commit also made it (a rename is one operation: atomic).
//!   File data written but not synced may have been written back in part:
//!   each dirty 4 KiB page independently, and the new size independently
//!   (a longer size without its pages reads as zeros, as on XFS).
//!
//! File attributes (mode, owner) are durable at once (both real journaled
//! filesystems and keepd's checks treat them so). Locks and mmap coherence
//! are the kernel's (FUSE without lock support: local locks).

use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

pub const ROOT: u64 = 1;
pub const PAGE: u64 = 4096;

pub type Errno = i32;
pub type Res<T> = Result<T, Errno>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    Strict,
    Writeback,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cut::Strict => "strict",
            Cut::Writeback => "writeback",
        })
    }
}

#[derive(Clone, Debug)]
pub struct Attrs {
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

impl Attrs {
    fn new(perm: u32, uid: u32, gid: u32) -> Attrs {
        let now = SystemTime::now();
        Attrs {
            perm: perm & 0o7777,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }
}

type Entries = BTreeMap<OsString, u64>;

#[derive(Clone, Debug)]
pub enum Body {
    File {
        data: Vec<u8>,
        synced: Vec<u8>,
        /// Pages written (or cut by a truncate) since the last sync.
        dirty: BTreeSet<u64>,
    },
    Dir {
        entries: Entries,
        synced: Entries,
        journaled: Entries,
        parent: u64,
    },
}

#[derive(Clone, Debug)]
pub struct Node {
    pub attrs: Attrs,
    pub nlink: u32,
    pub body: Body,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir { .. })
    }
    pub fn size(&self) -> u64 {
        match &self.body {
            Body::File { data, .. } => data.len() as u64,
            Body::Dir { entries, .. } => entries.len() as u64,
        }
    }
}

/// A metadata operation not yet committed to the journal.
#[derive(Clone, Debug)]
enum MetaOp {
    Set(u64, OsString, u64),
    Remove(u64, OsString),
    Rename(u64, OsString, u64, OsString, u64),
}

/// Counters of what the filesystem was asked to do.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub writes: u64,
    pub bytes_written: u64,
    pub fsyncs: u64,
    pub dir_fsyncs: u64,
}

/// What a cut threw away (compared with what processes saw just before).
#[derive(Clone, Debug, Default)]
pub struct CutReport {
    pub mode: Option<Cut>,
    /// Files whose durable content differs from what was last written.
    pub files_changed: u64,
    /// Bytes of written content not on the medium (sizes compared).
    pub bytes_lost: u64,
    /// Names present before the cut and absent after.
    pub names_lost: u64,
    /// Names present after the cut that had been removed or replaced.
    pub names_back: u64,
    /// Metadata operations since the last commit, and how many survived
    /// (writeback cuts).
    pub journal_pending: u64,
    pub journal_kept: u64,
}

impl std::fmt::Display for CutReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cut: {} files lost unsynced content ({} bytes), {} names lost, {} removed names back",
            self.mode.map(|m| m.to_string()).unwrap_or_default(),
            self.files_changed,
            self.bytes_lost,
            self.names_lost,
            self.names_back
        )?;
        if self.mode == Some(Cut::Writeback) {
            write!(
                f,
                ", {} of {} journal ops kept",
                self.journal_kept, self.journal_pending
            )?;
        }
        Ok(())
    }
}

pub struct Model {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    log: Vec<MetaOp>,
    /// After a cut: every operation fails (EIO), as on a machine without
    /// power.
    pub frozen: bool,
    /// A failing device: every operation that would change the medium
    /// (writes, syncs, creates, links, renames, removals) fails with this
    /// errno; reads work.
    pub inject: Option<Errno>,
    pub stats: Stats,
}

impl Model {
    /// An empty filesystem whose root directory has `perm` and owner.
    pub fn new(perm: u32, uid: u32, gid: u32) -> Model {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                attrs: Attrs::new(perm, uid, gid),
                nlink: 2,
                body: Body::Dir {
                    entries: Entries::new(),
                    synced: Entries::new(),
                    journaled: Entries::new(),
                    parent: ROOT,
                },
            },
        );
        Model {
            nodes,
            next_ino: ROOT + 1,
            log: Vec::new(),
            frozen: false,
            inject: None,
            stats: Stats::default(),
        }
    }

    fn live(&self) -> Res<()> {
        if self.frozen {
            Err(libc::EIO)
        } else {
            Ok(())
        }
    }

    pub fn node(&self, ino: u64) -> Res<&Node> {
        self.live()?;
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    /// A change to the medium: refused by a failing device.
    fn change(&self) -> Res<()> {
        self.live()?;
        match self.inject {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.change()?;
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn entries(&self, dir: u64) -> Res<&Entries> {
        match &self.node(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            Body::File { .. } => Err(libc::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Res<&mut Entries> {
        match &mut self.node_mut(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            Body::File { .. } => Err(libc::ENOTDIR),
        }
    }

    pub fn lookup(&self, dir: u64, name: &OsStr) -> Res<u64> {
        if name == "." {
            return Ok(dir);
        }
        if name == ".." {
            return match &self.node(dir)?.body {
                Body::Dir { parent, .. } => Ok(*parent),
                Body::File { .. } => Err(libc::ENOTDIR),
            };
        }
        self.entries(dir)?.get(name).copied().ok_or(libc::ENOENT)
    }

    fn touch(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            n.attrs.mtime = now;
            n.attrs.ctime = now;
        }
    }

    fn check_name(name: &OsStr) -> Res<()> {
        if name.is_empty() || name == "." || name == ".." || name.len() > 255 {
            return Err(libc::EINVAL);
        }
        Ok(())
    }

    fn add(&mut self, dir: u64, name: &OsStr, node: Node) -> Res<u64> {
        self.change()?;
        Self::check_name(name)?;
        if self.entries(dir)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        self.entries_mut(dir)?.insert(name.to_owned(), ino);
        self.log.push(MetaOp::Set(dir, name.to_owned(), ino));
        self.touch(dir);
        Ok(ino)
    }

    pub fn create(&mut self, dir: u64, name: &OsStr, perm: u32, uid: u32, gid: u32) -> Res<u64> {
        self.add(
            dir,
            name,
            Node {
                attrs: Attrs::new(perm, uid, gid),
                nlink: 1,
                body: Body::File {
                    data: Vec::new(),
                    synced: Vec::new(),
                    dirty: BTreeSet::new(),
                },
            },
        )
    }

    pub fn mkdir(&mut self, dir: u64, name: &OsStr, perm: u32, uid: u32, gid: u32) -> Res<u64> {
        self.add(
            dir,
            name,
            Node {
                attrs: Attrs::new(perm, uid, gid),
                nlink: 2,
                body: Body::Dir {
                    entries: Entries::new(),
                    synced: Entries::new(),
                    journaled: Entries::new(),
                    parent: dir,
                },
            },
        )
    }

    pub fn link(&mut self, ino: u64, dir: u64, name: &OsStr) -> Res<()> {
        Self::check_name(name)?;
        if self.node(ino)?.is_dir() {
            return Err(libc::EPERM);
        }
        if self.entries(dir)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        self.entries_mut(dir)?.insert(name.to_owned(), ino);
        self.log.push(MetaOp::Set(dir, name.to_owned(), ino));
        self.node_mut(ino)?.nlink += 1;
        self.touch(dir);
        self.touch(ino);
        Ok(())
    }

    /// Unlinks a file. Its content stays reachable for open handles and
    /// for a cut that brings the name back (nodes are never freed before a
    /// cut; a test run writes little).
    pub fn unlink(&mut self, dir: u64, name: &OsStr) -> Res<()> {
        let ino = self.lookup(dir, name)?;
        if self.node(ino)?.is_dir() {
            return Err(libc::EISDIR);
        }
        self.entries_mut(dir)?.remove(name);
        self.log.push(MetaOp::Remove(dir, name.to_owned()));
        let n = self.node_mut(ino)?;
        n.nlink = n.nlink.saturating_sub(1);
        self.touch(dir);
        Ok(())
    }

    pub fn rmdir(&mut self, dir: u64, name: &OsStr) -> Res<()> {
        let ino = self.lookup(dir, name)?;
        match &self.node(ino)?.body {
            Body::Dir { entries, .. } if entries.is_empty() => {}
            Body::Dir { .. } => return Err(libc::ENOTEMPTY),
            Body::File { .. } => return Err(libc::ENOTDIR),
        }
        self.entries_mut(dir)?.remove(name);
        self.log.push(MetaOp::Remove(dir, name.to_owned()));
        self.node_mut(ino)?.nlink = 0;
        self.touch(dir);
        Ok(())
    }

    /// Whether `a` is `b` or one of its ancestors.
    fn is_ancestor(&self, a: u64, mut b: u64) -> bool {
        loop {
            if a == b {
                return true;
            }
            match self.nodes.get(&b).map(|n| &n.body) {
                Some(Body::Dir { parent, .. }) if *parent != b => b = *parent,
                _ => return false,
            }
        }
    }

    pub fn rename(
        &mut self,
        dir: u64,
        name: &OsStr,
        to_dir: u64,
        to_name: &OsStr,
        noreplace: bool,
    ) -> Res<()> {
        Self::check_name(to_name)?;
        let ino = self.lookup(dir, name)?;
        let moving_dir = self.node(ino)?.is_dir();
        self.entries(to_dir)?;
        if moving_dir && self.is_ancestor(ino, to_dir) {
            return Err(libc::EINVAL);
        }
        if let Ok(old) = self.lookup(to_dir, to_name) {
            if old == ino {
                return Ok(());
            }
            if noreplace {
                return Err(libc::EEXIST);
            }
            let old_node = self.node(old)?;
            match (&old_node.body, moving_dir) {
                (Body::Dir { entries, .. }, true) if entries.is_empty() => {}
                (Body::Dir { .. }, true) => return Err(libc::ENOTEMPTY),
                (Body::Dir { .. }, false) => return Err(libc::EISDIR),
                (Body::File { .. }, true) => return Err(libc::ENOTDIR),
                (Body::File { .. }, false) => {}
            }
            let n = self.node_mut(old)?;
            n.nlink = n.nlink.saturating_sub(1);
        }
        self.entries_mut(dir)?.remove(name);
        self.entries_mut(to_dir)?.insert(to_name.to_owned(), ino);
        if let Body::Dir { parent, .. } = &mut self.node_mut(ino)?.body {
            *parent = to_dir;
        }
        self.log.push(MetaOp::Rename(
            dir,
            name.to_owned(),
            to_dir,
            to_name.to_owned(),
            ino,
        ));
        self.touch(dir);
        self.touch(to_dir);
        Ok(())
    }

    pub fn read(&self, ino: u64, off: u64, size: u32) -> Res<Vec<u8>> {
        match &self.node(ino)?.body {
            Body::File { data, .. } => {
                let start = (off as usize).min(data.len());
                let end = (start + size as usize).min(data.len());
                Ok(data[start..end].to_vec())
            }
            Body::Dir { .. } => Err(libc::EISDIR),
        }
    }

    pub fn write(&mut self, ino: u64, off: u64, buf: &[u8]) -> Res<u32> {
        self.change()?;
        let n = self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        let Body::File { data, dirty, .. } = &mut n.body else {
            return Err(libc::EISDIR);
        };
        let off = off as usize;
        let end = off.checked_add(buf.len()).ok_or(libc::EFBIG)?;
        if end > (1 << 34) {
            return Err(libc::EFBIG);
        }
        if data.len() < end {
            data.resize(end, 0);
        }
        data[off..end].copy_from_slice(buf);
        if !buf.is_empty() {
            for p in (off as u64 / PAGE)..=((end as u64 - 1) / PAGE) {
                dirty.insert(p);
            }
        }
        self.stats.writes += 1;
        self.stats.bytes_written += buf.len() as u64;
        self.touch(ino);
        Ok(buf.len() as u32)
    }

    pub fn truncate(&mut self, ino: u64, size: u64) -> Res<()> {
        self.change()?;
        if size > (1 << 34) {
            return Err(libc::EFBIG);
        }
        let n = self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        let Body::File { data, dirty, .. } = &mut n.body else {
            return Err(libc::EISDIR);
        };
        let (lo, hi) = (size.min(data.len() as u64), size.max(data.len() as u64));
        data.resize(size as usize, 0);
        for p in (lo / PAGE)..=(hi / PAGE) {
            dirty.insert(p);
        }
        self.touch(ino);
        Ok(())
    }

    pub fn set_attrs(
        &mut self,
        ino: u64,
        perm: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Res<()> {
        let n = self.node_mut(ino)?;
        if let Some(p) = perm {
            n.attrs.perm = p & 0o7777;
        }
        if let Some(u) = uid {
            n.attrs.uid = u;
        }
        if let Some(g) = gid {
            n.attrs.gid = g;
        }
        if let Some(t) = atime {
            n.attrs.atime = t;
        }
        if let Some(t) = mtime {
            n.attrs.mtime = t;
        }
        n.attrs.ctime = SystemTime::now();
        Ok(())
    }

    /// The journal commit every sync forces (writeback model): all metadata
    /// operations so far are on the medium.
    fn commit_journal(&mut self) {
        let log = std::mem::take(&mut self.log);
        let mut view: HashMap<u64, Entries> = HashMap::new();
        for op in &log {
            replay(op, &mut view, &self.nodes, |n| match &n.body {
                Body::Dir { journaled, .. } => journaled.clone(),
                Body::File { .. } => Entries::new(),
            });
        }
        for (dir, e) in view {
            if let Some(Node {
                body: Body::Dir { journaled, .. },
                ..
            }) = self.nodes.get_mut(&dir)
            {
                *journaled = e;
            }
        }
    }

    /// `fsync`/`fdatasync` of a file, or `fsync` of a directory.
    pub fn fsync(&mut self, ino: u64) -> Res<()> {
        self.change()?;
        let n = self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        match &mut n.body {
            Body::File {
                data,
                synced,
                dirty,
            } => {
                synced.clone_from(data);
                dirty.clear();
                self.stats.fsyncs += 1;
            }
            Body::Dir {
                entries, synced, ..
            } => {
                synced.clone_from(entries);
                self.stats.dir_fsyncs += 1;
            }
        }
        self.commit_journal();
        Ok(())
    }

    /// A directory listing: (ino, is_dir, name), "." and ".." first.
    pub fn readdir(&self, dir: u64) -> Res<Vec<(u64, bool, OsString)>> {
        let parent = self.lookup(dir, OsStr::new(".."))?;
        let mut out = vec![(dir, true, ".".into()), (parent, true, "..".into())];
        for (name, ino) in self.entries(dir)? {
            let is_dir = self.nodes.get(ino).is_some_and(|n| n.is_dir());
            out.push((*ino, is_dir, name.clone()));
        }
        Ok(out)
    }

    /// Total bytes of file content (for statfs).
    pub fn used_bytes(&self) -> u64 {
        self.nodes.values().map(|n| n.size()).sum()
    }

    /// Freezes the filesystem (every later operation fails with EIO) and
    /// builds what a restart would find on the medium.
    pub fn cut(&mut self, mode: Cut, rng: &mut impl Rng) -> (Model, CutReport) {
        self.frozen = true;
        let mut report = CutReport {
            mode: Some(mode),
            ..Default::default()
        };
        // The entries each directory has on the medium.
        let mut view: HashMap<u64, Entries> = HashMap::new();
        let dir_view = |n: &Node| match (&n.body, mode) {
            (Body::Dir { synced, .. }, Cut::Strict) => synced.clone(),
            (Body::Dir { journaled, .. }, Cut::Writeback) => journaled.clone(),
            (Body::File { .. }, _) => Entries::new(),
        };
        if mode == Cut::Writeback {
            let keep = rng.gen_range(0..=self.log.len());
            report.journal_pending = self.log.len() as u64;
            report.journal_kept = keep as u64;
            for op in &self.log[..keep] {
                replay(op, &mut view, &self.nodes, dir_view);
            }
        }
        let mut out = Model {
            nodes: HashMap::new(),
            next_ino: self.next_ino,
            log: Vec::new(),
            frozen: false,
            inject: None,
            stats: Stats::default(),
        };
        let mut seen = HashSet::new();
        let mut stack = vec![(ROOT, ROOT)];
        let mut links: HashMap<u64, u32> = HashMap::new();
        while let Some((ino, parent)) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            let Some(n) = self.nodes.get(&ino) else {
                continue;
            };
            let body = match &n.body {
                Body::Dir { entries: now, .. } => {
                    let durable = view.get(&ino).cloned().unwrap_or_else(|| dir_view(n));
                    for (name, child) in now {
                        if !durable.contains_key(name) {
                            report.names_lost += 1;
                        } else if durable.get(name) != Some(child) {
                            report.names_back += 1;
                        }
                    }
                    for name in durable.keys() {
                        if !now.contains_key(name) {
                            report.names_back += 1;
                        }
                    }
                    for child in durable.values() {
                        *links.entry(*child).or_default() += 1;
                        stack.push((*child, ino));
                    }
                    Body::Dir {
                        entries: durable.clone(),
                        synced: durable.clone(),
                        journaled: durable,
                        parent,
                    }
                }
                Body::File {
                    data,
                    synced,
                    dirty,
                } => {
                    let mut kept = synced.clone();
                    if mode == Cut::Writeback {
                        for &p in dirty {
                            if rng.gen_bool(0.5) {
                                let start = (p * PAGE) as usize;
                                if start >= data.len() {
                                    continue;
                                }
                                let end = (start + PAGE as usize).min(data.len());
                                if kept.len() < end {
                                    kept.resize(end, 0);
                                }
                                kept[start..end].copy_from_slice(&data[start..end]);
                            }
                        }
                        if !dirty.is_empty() && rng.gen_bool(0.5) {
                            kept.resize(data.len(), 0);
                        }
                    }
                    if kept != *data {
                        report.files_changed += 1;
                        let same = kept.iter().zip(data.iter()).filter(|(a, b)| a == b).count();
                        report.bytes_lost += (data.len().max(kept.len()) - same) as u64;
                    }
                    Body::File {
                        data: kept.clone(),
                        synced: kept,
                        dirty: BTreeSet::new(),
                    }
                }
            };
            out.nodes.insert(
                ino,
                Node {
                    attrs: n.attrs.clone(),
                    nlink: if n.is_dir() { 2 } else { 0 },
                    body,
                },
            );
        }
        for (ino, n) in out.nodes.iter_mut() {
            if !n.is_dir() {
                n.nlink = links.get(ino).copied().unwrap_or(1);
            }
        }
        (out, report)
    }
}

/// Applies one journaled operation to the directories' medium view
/// (`base` gives a directory's view before the first operation on it).
fn replay(
    op: &MetaOp,
    view: &mut HashMap<u64, Entries>,
    nodes: &HashMap<u64, Node>,
    base: impl Fn(&Node) -> Entries,
) {
    fn get<'a>(
        view: &'a mut HashMap<u64, Entries>,
        nodes: &HashMap<u64, Node>,
        base: &impl Fn(&Node) -> Entries,
        dir: u64,
    ) -> &'a mut Entries {
        view.entry(dir)
            .or_insert_with(|| nodes.get(&dir).map(base).unwrap_or_default())
    }
    match op {
        MetaOp::Set(d, n, i) => {
            get(view, nodes, &base, *d).insert(n.clone(), *i);
        }
        MetaOp::Remove(d, n) => {
            get(view, nodes, &base, *d).remove(n);
        }
        MetaOp::Rename(d, n, td, tn, i) => {
            get(view, nodes, &base, *d).remove(n);
            get(view, nodes, &base, *td).insert(tn.clone(), *i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    fn file(m: &Model, path: &[&str]) -> Option<Vec<u8>> {
        let mut ino = ROOT;
        for p in path {
            ino = m.lookup(ino, os(p)).ok()?;
        }
        m.read(ino, 0, u32::MAX).ok()
    }

    #[test]
    fn unsynced_data_is_lost_synced_data_kept() {
        let mut m = Model::new(0o700, 0, 0);
        let f = m.create(ROOT, os("a"), 0o600, 0, 0).unwrap();
        m.fsync(ROOT).unwrap();
        m.write(f, 0, b"first").unwrap();
        m.fsync(f).unwrap();
        m.write(f, 5, b" second").unwrap();
        assert_eq!(file(&m, &["a"]).unwrap(), b"first second");
        let (after, r) = m.cut(Cut::Strict, &mut rng());
        assert_eq!(file(&after, &["a"]).unwrap(), b"first");
        assert_eq!(r.files_changed, 1);
        // The old filesystem is dead.
        assert_eq!(m.read(f, 0, 10), Err(libc::EIO));
    }

    #[test]
    fn strict_entries_need_a_directory_fsync() {
        let mut m = Model::new(0o700, 0, 0);
        let f = m.create(ROOT, os("a"), 0o600, 0, 0).unwrap();
        m.write(f, 0, b"x").unwrap();
        m.fsync(f).unwrap();
        let (after, r) = m.cut(Cut::Strict, &mut rng());
        assert_eq!(file(&after, &["a"]), None, "create not synced in its dir");
        assert_eq!(r.names_lost, 1);

        let mut m = Model::new(0o700, 0, 0);
        let f = m.create(ROOT, os("a"), 0o600, 0, 0).unwrap();
        m.write(f, 0, b"x").unwrap();
        m.fsync(f).unwrap();
        m.fsync(ROOT).unwrap();
        m.unlink(ROOT, os("a")).unwrap();
        let (after, r) = m.cut(Cut::Strict, &mut rng());
        assert_eq!(file(&after, &["a"]).unwrap(), b"x", "unlink not synced");
        assert_eq!(r.names_back, 1);
    }

    #[test]
    fn a_new_directory_needs_its_parent_synced() {
        let mut m = Model::new(0o700, 0, 0);
        let d = m.mkdir(ROOT, os("d"), 0o700, 0, 0).unwrap();
        let f = m.create(d, os("a"), 0o600, 0, 0).unwrap();
        m.write(f, 0, b"x").unwrap();
        m.fsync(f).unwrap();
        m.fsync(d).unwrap();
        let (after, _) = m.cut(Cut::Strict, &mut rng());
        assert_eq!(file(&after, &["d", "a"]), None);
        assert!(after.lookup(ROOT, os("d")).is_err());
    }

    #[test]
    fn link_then_unlink_the_temporary_name() {
        // keepd's durable write: temp file, fsync, link, unlink temp, fsync dir.
        let mut m = Model::new(0o700, 0, 0);
        let t = m.create(ROOT, os(".t"), 0o600, 0, 0).unwrap();
        m.write(t, 0, b"content").unwrap();
        m.fsync(t).unwrap();
        m.link(t, ROOT, os("final")).unwrap();
        m.unlink(ROOT, os(".t")).unwrap();
        m.fsync(ROOT).unwrap();
        let (after, r) = m.cut(Cut::Strict, &mut rng());
        assert_eq!(file(&after, &["final"]).unwrap(), b"content");
        assert_eq!(file(&after, &[".t"]), None);
        assert_eq!((r.names_lost, r.names_back, r.files_changed), (0, 0, 0));
        let fin = after.lookup(ROOT, os("final")).unwrap();
        assert_eq!(after.node(fin).unwrap().nlink, 1);
    }

    #[test]
    fn writeback_keeps_a_prefix_and_renames_whole() {
        for seed in 0..64 {
            let mut m = Model::new(0o700, 0, 0);
            let a = m.mkdir(ROOT, os("a"), 0o700, 0, 0).unwrap();
            let b = m.mkdir(ROOT, os("b"), 0o700, 0, 0).unwrap();
            let f = m.create(a, os("f"), 0o600, 0, 0).unwrap();
            m.write(f, 0, &[1u8; 10000]).unwrap();
            m.fsync(f).unwrap(); // commits the journal: a, b, a/f on the medium
            m.write(f, 0, &[2u8; 5000]).unwrap();
            m.rename(a, os("f"), b, os("g"), false).unwrap();
            let (after, r) = m.cut(Cut::Writeback, &mut rand::rngs::StdRng::seed_from_u64(seed));
            let in_a = file(&after, &["a", "f"]);
            let in_b = file(&after, &["b", "g"]);
            assert!(
                in_a.is_some() != in_b.is_some(),
                "seed {seed}: rename not atomic"
            );
            let data = in_a.or(in_b).unwrap();
            assert_eq!(data.len(), 10000);
            assert!(data[5000..].iter().all(|&x| x == 1));
            assert!(data[..4096].iter().all(|&x| x == data[0]), "pages whole");
            assert_eq!(r.journal_pending, 1);
        }
    }

    #[test]
    fn writeback_size_without_pages_reads_zeros() {
        let mut seen_zeros = false;
        for seed in 0..64 {
            let mut m = Model::new(0o700, 0, 0);
            let f = m.create(ROOT, os("f"), 0o600, 0, 0).unwrap();
            m.fsync(ROOT).unwrap();
            m.write(f, 0, &[9u8; 3 * PAGE as usize]).unwrap();
            let (after, _) = m.cut(Cut::Writeback, &mut rand::rngs::StdRng::seed_from_u64(seed));
            let d = file(&after, &["f"]).unwrap();
            assert!((d.len() as u64).is_multiple_of(PAGE));
            for page in d.chunks(PAGE as usize) {
                assert!(page.iter().all(|&x| x == page[0]));
                seen_zeros |= page[0] == 0;
            }
        }
        assert!(seen_zeros);
    }

    #[test]
    fn rename_over_and_rmdir() {
        let mut m = Model::new(0o700, 0, 0);
        let a = m.create(ROOT, os("a"), 0o600, 0, 0).unwrap();
        let b = m.create(ROOT, os("b"), 0o600, 0, 0).unwrap();
        m.write(a, 0, b"A").unwrap();
        m.write(b, 0, b"B").unwrap();
        m.fsync(a).unwrap();
        m.fsync(b).unwrap();
        m.fsync(ROOT).unwrap();
        assert_eq!(
            m.rename(ROOT, os("a"), ROOT, os("b"), true),
            Err(libc::EEXIST)
        );
        m.rename(ROOT, os("a"), ROOT, os("b"), false).unwrap();
        assert_eq!(file(&m, &["b"]).unwrap(), b"A");
        let d = m.mkdir(ROOT, os("d"), 0o700, 0, 0).unwrap();
        m.create(d, os("x"), 0o600, 0, 0).unwrap();
        assert_eq!(m.rmdir(ROOT, os("d")), Err(libc::ENOTEMPTY));
        let (after, _) = m.cut(Cut::Strict, &mut rng());
        assert_eq!(file(&after, &["a"]).unwrap(), b"A");
        assert_eq!(file(&after, &["b"]).unwrap(), b"B");
        assert!(after.lookup(ROOT, os("d")).is_err());
    }
}
