//! Thumbnails of image files: PocketBase's `?thumb=` on file downloads.
//!
//! A size is served only when the file field lists it in `thumbs` (or it is
//! PocketBase's always-allowed `100x100`) and the original is a PNG, JPEG,
//! GIF or WebP. Otherwise — and whenever a thumb can't be made — the
//! original is served, as PocketBase does (never an error).
//!
//! Sizes follow PocketBase's grammar `^(\d+)x(\d+)(t|b|f)?$`, not both
//! zero: `WxH` fills the box and crops from the centre, `WxHt` from the
//! top, `WxHb` from the bottom, `WxHf` fits inside the box (never
//! enlarged), `0xH`/`Wx0` scale keeping the aspect ratio. The geometry is
//! that of PocketBase's imaging library (bilinear resampling, the EXIF
//! orientation applied first, the first frame of an animation). A JPEG
//! gives a JPEG, a GIF a GIF, anything else a PNG.
//!
//! Thumbs are made on first request and kept beside the original as
//! `thumbs_<name>/<size>_<name>` (the same keys as PocketBase's), in the
//! original's storage: on disk written like the originals (0600 in a 0700
//! directory, synced, renamed), or in the S3 bucket. They go with the
//! original (`Storage::remove`; a record's directory or prefix holds them
//! all).
//!
//! Bounded: at most `max_thumb_workers` images are decoded at once, on
//! blocking threads (a request waits up to a minute for a worker, then
//! gets the original); one thumb is made once however many requests ask
//! for it together (the others wait, then read the file); an image larger
//! than `max_thumb_pixels` — as its header declares it, or at any step of
//! the resize — is never decoded (decompression bombs); nor is one whose
//! decoding and resizing would take more than `max_thumb_bytes` of memory
//! (the decoded pixels at their depth, a conversion to 8 bits, the
//! resampler's buffers), and the decoder's own allocations are capped
//! there too (`image::Limits::max_alloc`).

use super::{safe_name, Local, Storage};
use bytes::Bytes;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The original types PocketBase makes thumbs of (its `imageContentTypes`).
pub const IMAGE_TYPES: &[&str] = &[
    "image/png",
    "image/jpg",
    "image/jpeg",
    "image/gif",
    "image/webp",
];

/// Sizes served for every image field, listed or not.
pub const DEFAULT_SIZES: &[&str] = &["100x100"];

/// Longest wait for a free worker before the original is served
/// (PocketBase's `PB_THUMBS_MAX_WAIT` default).
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Where a cropped image keeps its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Center,
    Top,
    Bottom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fill the box, cropping what sticks out.
    Fill(Anchor),
    /// Fit inside the box; an image already inside is kept as it is.
    Fit,
    /// One side given (the other is 0): scale keeping the aspect ratio.
    Scale,
}

/// A parsed thumb size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
    pub mode: Mode,
}

impl Size {
    /// `WxH`, `WxHt`, `WxHb`, `WxHf`, `0xH`, `Wx0` (digits only; not
    /// `0x0`). A zero side means scaling whatever the suffix.
    pub fn parse(s: &str) -> Option<Size> {
        let (w, rest) = s.split_once('x')?;
        let (h, mode) = match rest.as_bytes().last()? {
            b't' => (&rest[..rest.len() - 1], Mode::Fill(Anchor::Top)),
            b'b' => (&rest[..rest.len() - 1], Mode::Fill(Anchor::Bottom)),
            b'f' => (&rest[..rest.len() - 1], Mode::Fit),
            _ => (rest, Mode::Fill(Anchor::Center)),
        };
        let number = |d: &str| {
            if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            d.parse::<u32>().ok()
        };
        let (width, height) = (number(w)?, number(h)?);
        let mode = match (width, height) {
            (0, 0) => return None,
            (0, _) | (_, 0) => Mode::Scale,
            _ => mode,
        };
        Some(Size {
            width,
            height,
            mode,
        })
    }
}

/// Whether `size` may be served for a field listing `listed`.
pub fn allowed(size: &str, listed: &[String]) -> bool {
    DEFAULT_SIZES.contains(&size) || listed.iter().any(|l| l == size)
}

/// The decoder for a sniffed type, if thumbs are made of it.
fn format_of(mime: &str) -> Option<ImageFormat> {
    let base = mime.split(';').next().unwrap_or_default().trim();
    if !IMAGE_TYPES.contains(&base) {
        return None;
    }
    Some(match base {
        "image/png" => ImageFormat::Png,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::WebP,
        _ => ImageFormat::Jpeg,
    })
}

/// The directory of a file's thumbs, beside it.
pub fn dir_name(filename: &str) -> String {
    format!("thumbs_{filename}")
}

/// A thumb's file name in that directory.
pub fn file_name(size: &str, filename: &str) -> String {
    format!("{size}_{filename}")
}

/// A thumb's key, `<cid>/<rid>/thumbs_<name>/<size>_<name>`: its S3 key
/// and its path under the storage root (None: a name we could not have
/// stored).
fn key(cid: &str, rid: &str, filename: &str, size: &str) -> Option<String> {
    let (dir, name) = (dir_name(filename), file_name(size, filename));
    [cid, rid, &dir, &name]
        .iter()
        .all(|p| safe_name(p))
        .then(|| format!("{cid}/{rid}/{dir}/{name}"))
}

/// A stored thumb (blocking). A thumb on disk counts only while its
/// original is there.
fn read(storage: &Storage, key: &str, original: (&str, &str, &str)) -> io::Result<Option<Vec<u8>>> {
    match storage {
        Storage::Local(l) => {
            let (c, r, f) = original;
            if !l.path(c, r, f).is_some_and(|p| p.is_file()) {
                return Ok(None);
            }
            match std::fs::read(l.root.join(key)) {
                Ok(d) => Ok(Some(d)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        }
        Storage::S3(c) => c.get(key),
    }
}

/// Removes a file's thumbs from disk (with the file's own removal).
pub(crate) fn remove(storage: &Local, cid: &str, rid: &str, filename: &str) {
    if let Some(d) = storage.path(cid, rid, &dir_name(filename)) {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Removes a file's thumbs from the bucket (failures are logged).
pub(crate) fn remove_s3(c: &super::s3::S3, cid: &str, rid: &str, filename: &str) {
    let dir = dir_name(filename);
    if [cid, rid, &dir].iter().all(|p| safe_name(p)) {
        if let Err(e) = c.delete_prefix(&format!("{cid}/{rid}/{dir}/")) {
            tracing::warn!(error = %e, file = %filename, "removing a file's thumbs failed");
        }
    }
}

/// Stores a thumb (blocking): on disk with `Local::put`'s durable write in
/// the file's thumbs directory, or in the bucket.
fn store(
    storage: &Storage,
    cid: &str,
    rid: &str,
    filename: &str,
    size: &str,
    data: &[u8],
) -> io::Result<()> {
    let key = key(cid, rid, filename, size)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unsafe file name"))?;
    let local = match storage {
        Storage::Local(l) => l,
        Storage::S3(c) => return c.put(&key, data, &super::sniff(data)),
    };
    // The same storage one level down: its "records" are this
    // collection's records, its "record directories" the thumbs_ ones.
    let under = Local {
        root: local.root.join(cid),
    };
    let (dir, name) = (dir_name(filename), file_name(size, filename));
    // A crash during a write leaves `put`'s temporary file behind; the
    // caller holds this thumb's flight, so one found now is stale.
    if let Some(d) = under.dir(rid, &dir) {
        let _ = std::fs::remove_file(d.join(format!(".{name}.tmp")));
    }
    under.put(rid, &dir, &name, data)
}

/// One step from an image to its thumb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// x, y, width, height.
    Crop(u32, u32, u32, u32),
    /// width, height.
    Resize(u32, u32),
}

impl Step {
    fn output(&self) -> (u32, u32) {
        match *self {
            Step::Crop(_, _, w, h) | Step::Resize(w, h) => (w, h),
        }
    }
}

/// `v` rounded half up, at least 1 (imaging's sizes).
fn round1(v: f64) -> u32 {
    (v + 0.5).floor().max(1.0) as u32
}

/// A size with a zero side filled in from the source's aspect ratio.
fn scaled(sw: u32, sh: u32, w: u32, h: u32) -> (u32, u32) {
    let (fw, fh) = (f64::from(sw), f64::from(sh));
    match (w, h) {
        (0, h) => (round1(f64::from(h) * fw / fh), h),
        (w, 0) => (w, round1(f64::from(w) * fh / fw)),
        wh => wh,
    }
}

fn resize(from: (u32, u32), to: (u32, u32), steps: &mut Vec<Step>) {
    if from != to {
        steps.push(Step::Resize(to.0, to.1));
    }
}

/// The `w`×`h` part of a `sw`×`sh` image at `anchor` (horizontally always
/// centred), clipped to the image.
fn crop(sw: u32, sh: u32, w: u32, h: u32, anchor: Anchor) -> Step {
    let x = sw.saturating_sub(w) / 2;
    let y = match anchor {
        Anchor::Top => 0,
        Anchor::Center => sh.saturating_sub(h) / 2,
        Anchor::Bottom => sh.saturating_sub(h),
    };
    Step::Crop(x, y, w.min(sw - x), h.min(sh - y))
}

/// The steps from a `sw`×`sh` image to its thumb (none: the image as is).
pub(crate) fn plan(sw: u32, sh: u32, size: Size) -> Vec<Step> {
    let mut steps = Vec::new();
    if sw == 0 || sh == 0 {
        return steps;
    }
    let (w, h) = (size.width, size.height);
    let src_ratio = f64::from(sw) / f64::from(sh);
    match size.mode {
        Mode::Scale => resize((sw, sh), scaled(sw, sh, w, h), &mut steps),
        Mode::Fit => {
            if sw <= w && sh <= h {
                return steps;
            }
            let to = if src_ratio > f64::from(w) / f64::from(h) {
                (w, (f64::from(w) / src_ratio) as u32)
            } else {
                ((f64::from(h) * src_ratio) as u32, h)
            };
            let to = match to {
                (0, h) => scaled(sw, sh, 0, h),
                (w, 0) => scaled(sw, sh, w, 0),
                to => to,
            };
            resize((sw, sh), to, &mut steps);
        }
        Mode::Fill(anchor) => {
            if (sw, sh) == (w, h) {
                return steps;
            }
            let wider_box = src_ratio < f64::from(w) / f64::from(h);
            if sw >= 100 && sh >= 100 {
                // Crop to the box's aspect ratio, then scale.
                let (cw, ch) = if wider_box {
                    (
                        sw,
                        round1(f64::from(sw) * f64::from(h) / f64::from(w)).min(sh),
                    )
                } else {
                    (
                        round1(f64::from(sh) * f64::from(w) / f64::from(h)).min(sw),
                        sh,
                    )
                };
                let c = crop(sw, sh, cw, ch, anchor);
                let from = c.output();
                if from != (sw, sh) {
                    steps.push(c);
                }
                resize(from, (w, h), &mut steps);
            } else {
                // Small images: scale to cover the box, then crop.
                let to = if wider_box {
                    scaled(sw, sh, w, 0)
                } else {
                    scaled(sw, sh, 0, h)
                };
                resize((sw, sh), to, &mut steps);
                if to != (w, h) {
                    steps.push(crop(to.0, to.1, w, h, anchor));
                }
            }
        }
    }
    steps
}

#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    #[error("{0}×{1} pixels is over max_thumb_pixels")]
    TooLarge(u32, u32),
    #[error("making the thumb would take {0} bytes, over max_thumb_bytes")]
    TooManyBytes(u64),
    #[error("no thumb worker free in time")]
    Busy,
    #[error("image: {0}")]
    Image(#[from] image::ImageError),
    #[error("storing the thumb: {0}")]
    Io(#[from] std::io::Error),
    #[error("thumb task failed: {0}")]
    Task(String),
}

/// Decodes `original`, makes the thumb, encodes it. Refuses, before
/// decoding, an image or a step of the resize over `max_pixels`.
#[cfg(test)]
pub(crate) fn render(
    original: &[u8],
    format: ImageFormat,
    size: Size,
    max_pixels: u64,
) -> Result<Vec<u8>, ThumbError> {
    render_bounded(original, format, size, max_pixels, u64::MAX)
}

/// The memory making a thumb takes at most: the decoded image at its
/// depth, its conversion to 8 bits a channel (when it isn't), and at each
/// resize the resampler's buffers (an intermediate of the source width ×
/// the new height in f32 RGBA, 16 bytes a pixel, and the output).
fn cost(decoded: u64, color: image::ColorType, (w, h): (u32, u32), steps: &[Step]) -> u64 {
    use image::ColorType as C;
    let px = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
    let mut total = decoded;
    if !matches!(color, C::L8 | C::La8 | C::Rgb8 | C::Rgba8) {
        total = total.saturating_add(px((w, h)) * 4);
    }
    let mut from = (w, h);
    let mut peak = 0u64;
    for step in steps {
        let to = step.output();
        let step_cost = match step {
            Step::Resize(..) => px((from.0, to.1)) * 16 + px(to) * 4,
            Step::Crop(..) => px(to) * 4,
        };
        peak = peak.max(step_cost);
        from = to;
    }
    total.saturating_add(peak)
}

/// `render` under a bound on the memory it takes (`max_bytes`): an image
/// that would take more is refused before it is decoded, and the decoder
/// may allocate no more than that.
pub(crate) fn render_bounded(
    original: &[u8],
    format: ImageFormat,
    size: Size,
    max_pixels: u64,
    max_bytes: u64,
) -> Result<Vec<u8>, ThumbError> {
    let mut decoder =
        ImageReader::with_format(std::io::Cursor::new(original), format).into_decoder()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_bytes);
    decoder.set_limits(limits)?;
    let (w, h) = decoder.dimensions();
    let over = |(w, h): (u32, u32)| u64::from(w) * u64::from(h) > max_pixels;
    if over((w, h)) {
        return Err(ThumbError::TooLarge(w, h));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let (w, h) = match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (h, w),
        _ => (w, h),
    };
    let steps = plan(w, h, size);
    if let Some(big) = steps.iter().map(Step::output).find(|&wh| over(wh)) {
        return Err(ThumbError::TooLarge(big.0, big.1));
    }
    let need = cost(decoder.total_bytes(), decoder.color_type(), (w, h), &steps);
    if need > max_bytes {
        return Err(ThumbError::TooManyBytes(need));
    }
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    use image::ColorType as C;
    if !matches!(img.color(), C::L8 | C::La8 | C::Rgb8 | C::Rgba8) {
        img = DynamicImage::ImageRgba8(img.to_rgba8());
    }
    for step in steps {
        img = match step {
            Step::Crop(x, y, w, h) => img.crop_imm(x, y, w, h),
            Step::Resize(w, h) => img.resize_exact(w, h, FilterType::Triangle),
        };
    }
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => img.write_with_encoder(
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95),
        )?,
        ImageFormat::Gif => {
            img.write_with_encoder(image::codecs::gif::GifEncoder::new_with_speed(&mut out, 10))?
        }
        _ => img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))?,
    }
    Ok(out)
}

type Flights = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// A request's share in making one thumb: the lock of that thumb, whose
/// entry leaves the table with the last share.
struct Flight {
    table: Flights,
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Flight {
    fn join(table: &Flights, key: String) -> Flight {
        let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
        let lock = t.entry(key.clone()).or_default().clone();
        Flight {
            table: table.clone(),
            key,
            lock,
        }
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        // Only the table's reference and ours left: nobody else waits.
        if Arc::strong_count(&self.lock) <= 2 {
            t.remove(&self.key);
        }
    }
}

/// What a download serves: the thumb or the original.
#[derive(Debug)]
pub struct Served {
    /// The name the client is given (`<size>_<name>` for a thumb).
    pub name: String,
    pub data: Bytes,
    pub thumb: bool,
}

/// The thumb makers: the worker bound, the pixel and byte bounds, the
/// thumbs being made.
pub struct Thumbs {
    workers: Arc<Semaphore>,
    /// Longest wait for a worker (`MAX_WAIT`).
    wait: Duration,
    max_pixels: u64,
    /// Memory one thumb may take (`max_thumb_bytes`).
    max_bytes: u64,
    flights: Flights,
}

impl Thumbs {
    pub fn new(max_workers: usize, max_pixels: u64, max_bytes: u64) -> Thumbs {
        Thumbs {
            workers: Arc::new(Semaphore::new(max_workers.max(1))),
            wait: MAX_WAIT,
            max_pixels,
            max_bytes,
            flights: Flights::default(),
        }
    }

    /// Thumb makers free now.
    pub fn free_workers(&self) -> usize {
        self.workers.available_permits()
    }

    /// The file to serve for `filename` with `?thumb=size` (None: no
    /// thumb asked): the thumb when the size is allowed for the field
    /// (`listed`) and the original is an image, else the original. None:
    /// no original; an error: the storage failed.
    pub async fn serve(
        &self,
        storage: Storage,
        cid: &str,
        rid: &str,
        filename: &str,
        size: Option<&str>,
        listed: &[String],
    ) -> io::Result<Option<Served>> {
        let wanted = size
            .filter(|s| allowed(s, listed))
            .and_then(|s| Some((s.to_string(), Size::parse(s)?)))
            .and_then(|(s, p)| Some((key(cid, rid, filename, &s)?, s, p)));
        enum Found {
            Thumb(Vec<u8>),
            Original(Bytes),
        }
        let found = {
            let storage = storage.clone();
            let (c, r, f) = (cid.to_string(), rid.to_string(), filename.to_string());
            let thumb = wanted.as_ref().map(|w| w.0.clone());
            tokio::task::spawn_blocking(move || {
                if let Some(k) = thumb {
                    // Not readable: made again (or the original served).
                    if let Ok(Some(d)) = read(&storage, &k, (&c, &r, &f)) {
                        return Ok(Some(Found::Thumb(d)));
                    }
                }
                Ok::<_, io::Error>(storage.get(&c, &r, &f)?.map(|d| Found::Original(d.into())))
            })
            .await
            .map_err(io::Error::other)??
        };
        let Some(found) = found else {
            return Ok(None);
        };
        let original = |data| Served {
            name: filename.to_string(),
            data,
            thumb: false,
        };
        let thumb = |label: &str, data| Served {
            name: file_name(label, filename),
            data,
            thumb: true,
        };
        let orig = match found {
            Found::Original(d) => d,
            Found::Thumb(d) => {
                let label = wanted.map(|w| w.1).unwrap_or_default();
                return Ok(Some(thumb(&label, Bytes::from(d))));
            }
        };
        let Some((thumb_key, label, size)) = wanted else {
            return Ok(Some(original(orig)));
        };
        let Some(format) = format_of(&super::sniff(&orig)) else {
            return Ok(Some(original(orig)));
        };
        let job = Job {
            storage,
            cid: cid.to_string(),
            rid: rid.to_string(),
            filename: filename.to_string(),
            label: label.clone(),
            size,
            format,
            original: orig.clone(),
        };
        Ok(Some(match self.make(thumb_key, job).await {
            Ok(d) => thumb(&label, d),
            Err(e) => {
                tracing::warn!(error = %e, file = %filename, thumb = %label,
                    "thumb not made; serving the original");
                original(orig)
            }
        }))
    }

    /// Makes and stores a thumb once: a request that finds it being made
    /// waits, then reads it.
    async fn make(&self, key: String, job: Job) -> Result<Bytes, ThumbError> {
        let flight = Flight::join(&self.flights, key.clone());
        let turn = flight.lock.clone().lock_owned().await;
        let (k, st) = (key.clone(), job.storage.clone());
        let o = (job.cid.clone(), job.rid.clone(), job.filename.clone());
        let made =
            tokio::task::spawn_blocking(move || read(&st, &k, (&o.0, &o.1, &o.2)).ok().flatten())
                .await
                .map_err(|e| ThumbError::Task(e.to_string()))?;
        if let Some(d) = made {
            return Ok(Bytes::from(d));
        }
        let worker = tokio::time::timeout(self.wait, self.workers.clone().acquire_owned())
            .await
            .map_err(|_| ThumbError::Busy)?
            .map_err(|_| ThumbError::Busy)?;
        let (max_pixels, max_bytes) = (self.max_pixels, self.max_bytes);
        // The worker, the turn and the flight go with the task: a client
        // that leaves doesn't free them before the work is done.
        tokio::task::spawn_blocking(move || {
            let out = render_bounded(&job.original, job.format, job.size, max_pixels, max_bytes)
                .and_then(|t| {
                    store(
                        &job.storage,
                        &job.cid,
                        &job.rid,
                        &job.filename,
                        &job.label,
                        &t,
                    )?;
                    Ok(Bytes::from(t))
                });
            drop(worker);
            drop(turn);
            drop(flight);
            out
        })
        .await
        .map_err(|e| ThumbError::Task(e.to_string()))?
    }
}

/// One thumb to make.
struct Job {
    storage: Storage,
    cid: String,
    rid: String,
    filename: String,
    label: String,
    size: Size,
    format: ImageFormat,
    original: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};
    use std::path::PathBuf;

    fn size(s: &str) -> Size {
        Size::parse(s).unwrap()
    }

    #[test]
    fn sizes_parse_as_pocketbase() {
        use Anchor::*;
        type Case = (&'static str, Option<(u32, u32, Mode)>);
        let cases: &[Case] = &[
            ("100x100", Some((100, 100, Mode::Fill(Center)))),
            ("20x10t", Some((20, 10, Mode::Fill(Top)))),
            ("20x10b", Some((20, 10, Mode::Fill(Bottom)))),
            ("20x10f", Some((20, 10, Mode::Fit))),
            ("0x15", Some((0, 15, Mode::Scale))),
            ("15x0", Some((15, 0, Mode::Scale))),
            ("0x15f", Some((0, 15, Mode::Scale))),
            ("007x5", Some((7, 5, Mode::Fill(Center)))),
            ("0x0", None),
            ("0x0t", None),
            ("", None),
            ("x", None),
            ("100", None),
            ("100x", None),
            ("x100", None),
            ("100X100", None),
            ("100x100c", None),
            ("100x100tb", None),
            ("100x100 ", None),
            (" 100x100", None),
            ("+1x1", None),
            ("-1x1", None),
            ("1x1x1", None),
            ("1.5x2", None),
            ("１x1", None),
            ("99999999999x1", None),
            ("t", None),
            ("xt", None),
        ];
        for (s, want) in cases {
            let got = Size::parse(s).map(|z| (z.width, z.height, z.mode));
            assert_eq!(got, *want, "{s:?}");
        }
    }

    #[test]
    fn allowed_sizes() {
        assert!(allowed("100x100", &[]));
        assert!(allowed("20x10", &["20x10".into()]));
        assert!(!allowed("20x10", &["20x10t".into()]));
        assert!(!allowed("50x50", &[]));
        assert!(format_of("image/png").is_some());
        assert!(format_of("image/webp").is_some());
        assert!(format_of("image/bmp").is_none());
        assert!(format_of("image/svg+xml").is_none());
        assert!(format_of("text/plain; charset=utf-8").is_none());
    }

    fn out(sw: u32, sh: u32, s: &str) -> (u32, u32) {
        plan(sw, sh, size(s))
            .last()
            .map(Step::output)
            .unwrap_or((sw, sh))
    }

    #[test]
    fn plan_dimensions() {
        // (source, size, thumb)
        let cases = [
            // fill: always the box (small and large sources)
            ((40, 30), "20x10", (20, 10)),
            ((40, 30), "20x10t", (20, 10)),
            ((40, 30), "20x10b", (20, 10)),
            ((40, 30), "100x100", (100, 100)),
            ((400, 300), "100x100", (100, 100)),
            ((300, 400), "50x200b", (50, 200)),
            ((1, 99), "100x100", (100, 100)),
            // fit: inside the box, never enlarged
            ((40, 30), "20x10f", (13, 10)),
            ((40, 30), "30x30f", (30, 22)),
            ((40, 30), "100x100f", (40, 30)),
            ((1000, 1), "10x10f", (10, 1)),
            // scale: the other side from the ratio, rounded, at least 1
            ((40, 30), "0x15", (20, 15)),
            ((40, 30), "15x0", (15, 11)),
            ((40, 30), "80x0", (80, 60)),
            ((1000, 1), "10x0", (10, 1)),
        ];
        for ((sw, sh), s, want) in cases {
            assert_eq!(out(sw, sh, s), want, "{sw}x{sh} → {s}");
        }
        assert!(plan(20, 10, size("20x10")).is_empty());
        assert!(plan(40, 30, size("100x100f")).is_empty());
    }

    #[test]
    fn crops_keep_the_anchored_part() {
        // Large sources: crop first, at the anchor, horizontally centred.
        assert_eq!(
            plan(400, 400, size("200x100t"))[0],
            Step::Crop(0, 0, 400, 200)
        );
        assert_eq!(
            plan(400, 400, size("200x100"))[0],
            Step::Crop(0, 100, 400, 200)
        );
        assert_eq!(
            plan(400, 400, size("200x100b"))[0],
            Step::Crop(0, 200, 400, 200)
        );
        assert_eq!(
            plan(400, 200, size("100x100t"))[0],
            Step::Crop(100, 0, 200, 200)
        );
        // Small sources: scale to cover, then crop.
        assert_eq!(
            plan(40, 40, size("20x10b")),
            vec![Step::Resize(20, 20), Step::Crop(0, 10, 20, 10)]
        );
    }

    /// A PNG of `w`×`h` whose top third is red, middle green, bottom blue.
    fn bands(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |_, y| match y * 3 / h {
            0 => Rgb([255, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let mut v = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(std::io::Cursor::new(&mut v), ImageFormat::Png)
            .unwrap();
        v
    }

    fn decode(data: &[u8]) -> DynamicImage {
        image::load_from_memory(data).unwrap()
    }

    /// Which of red, green, blue a pixel mostly is.
    fn hue(img: &DynamicImage, x: u32, y: u32) -> usize {
        let p = img.to_rgb8().get_pixel(x, y).0;
        (0..3).max_by_key(|&i| p[i]).unwrap()
    }

    #[test]
    fn each_mode_renders_its_size() {
        let png = bands(40, 30);
        for (s, want) in [
            ("20x10", (20, 10)),
            ("20x10t", (20, 10)),
            ("20x10b", (20, 10)),
            ("20x10f", (13, 10)),
            ("0x15", (20, 15)),
            ("15x0", (15, 11)),
            ("100x100", (100, 100)),
        ] {
            let t = render(&png, ImageFormat::Png, size(s), 50_000_000).unwrap();
            assert_eq!(image::guess_format(&t).unwrap(), ImageFormat::Png, "{s}");
            let img = decode(&t);
            assert_eq!((img.width(), img.height()), want, "{s}");
        }
    }

    #[test]
    fn fill_anchors_pick_the_right_band() {
        for (w, h) in [(40, 42), (300, 300)] {
            let png = bands(w, h);
            let t = decode(&render(&png, ImageFormat::Png, size("20x10t"), u64::MAX).unwrap());
            assert_eq!((hue(&t, 10, 0), hue(&t, 10, 9)), (0, 1), "top of {w}x{h}");
            let b = decode(&render(&png, ImageFormat::Png, size("20x10b"), u64::MAX).unwrap());
            assert_eq!(
                (hue(&b, 10, 0), hue(&b, 10, 9)),
                (1, 2),
                "bottom of {w}x{h}"
            );
            let c = decode(&render(&png, ImageFormat::Png, size("20x10"), u64::MAX).unwrap());
            assert_eq!(
                (hue(&c, 10, 0), hue(&c, 10, 9)),
                (0, 2),
                "centre of {w}x{h}"
            );
        }
    }

    #[test]
    fn formats_out_as_pocketbase() {
        let rgb = decode(&bands(40, 30));
        let enc = |f: ImageFormat| {
            let mut v = Vec::new();
            rgb.write_to(std::io::Cursor::new(&mut v), f).unwrap();
            v
        };
        for (from, to) in [
            (ImageFormat::Jpeg, ImageFormat::Jpeg),
            (ImageFormat::Gif, ImageFormat::Gif),
            (ImageFormat::WebP, ImageFormat::Png),
        ] {
            let t = render(&enc(from), from, size("20x10"), u64::MAX).unwrap();
            assert_eq!(image::guess_format(&t).unwrap(), to, "{from:?}");
            let img = decode(&t);
            assert_eq!((img.width(), img.height()), (20, 10), "{from:?}");
        }
    }

    /// A PNG whose header declares `w`×`h` and whose pixels are missing
    /// (one empty deflate block).
    fn bomb(w: u32, h: u32) -> Vec<u8> {
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [
            (&b"IHDR"[..], &ihdr[..]),
            (b"IDAT", &[0x78, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]),
            (b"IEND", &[]),
        ] {
            v.extend((data.len() as u32).to_be_bytes());
            let mut c = kind.to_vec();
            c.extend(data);
            v.extend(&c);
            v.extend(crc32fast::hash(&c).to_be_bytes());
        }
        v
    }

    #[test]
    fn bombs_are_not_decoded() {
        let e = render(
            &bomb(100_000, 100_000),
            ImageFormat::Png,
            size("100x100"),
            50_000_000,
        );
        assert!(
            matches!(e, Err(ThumbError::TooLarge(100_000, 100_000))),
            "{e:?}"
        );
        // A small image blown up by the thumb size is refused too.
        let e = render(
            &bands(40, 30),
            ImageFormat::Png,
            size("40000x0"),
            50_000_000,
        );
        assert!(
            matches!(e, Err(ThumbError::TooLarge(40000, 30000))),
            "{e:?}"
        );
        // Under the limit the same header gets as far as the missing data.
        let e = render(&bomb(10, 10), ImageFormat::Png, size("100x100"), 50_000_000);
        assert!(matches!(e, Err(ThumbError::Image(_))), "{e:?}");
    }

    #[test]
    fn memory_is_bounded_before_decoding() {
        // 7000×7000 RGB at 8 bits: 147 MB decoded, under the pixel bound.
        let e = render_bounded(
            &bomb(7000, 7000),
            ImageFormat::Png,
            size("2000x2000"),
            50_000_000,
            64 << 20,
        );
        assert!(matches!(e, Err(ThumbError::TooManyBytes(_))), "{e:?}");
        // A 16 MP photo's thumb fits the default.
        let e = render_bounded(
            &bomb(4608, 3456),
            ImageFormat::Png,
            size("100x100"),
            50_000_000,
            96 << 20,
        );
        assert!(matches!(e, Err(ThumbError::Image(_))), "{e:?}");
        // A 2000×2000 thumb of 3000×3000 resamples through 3000×2000×16.
        let need = cost(
            3000 * 3000 * 3,
            image::ColorType::Rgb8,
            (3000, 3000),
            &plan(3000, 3000, size("2000x2000")),
        );
        assert!(need >= 27_000_000 + 96_000_000, "{need}");
    }

    #[test]
    fn exif_orientation_is_applied_first() {
        // A 40×30 JPEG marked "rotate 90°" is a 30×40 picture.
        let mut jpeg = Vec::new();
        decode(&bands(40, 30))
            .write_to(std::io::Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        let tiff: &[u8] = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0\0\0\0\0";
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let mut marked = jpeg[..2].to_vec();
        marked.extend([0xff, 0xe1]);
        marked.extend(((app1.len() + 2) as u16).to_be_bytes());
        marked.extend(&app1);
        marked.extend(&jpeg[2..]);
        let t = decode(&render(&marked, ImageFormat::Jpeg, size("0x20"), u64::MAX).unwrap());
        assert_eq!((t.width(), t.height()), (15, 20));
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("keepd-thumb-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn made_once_stored_beside_the_original_and_removed_with_it() {
        use std::os::unix::fs::PermissionsExt;
        let root = scratch("store");
        let storage = Storage::Local(Local::new(&root));
        let name = "pic_abcdefghij.png";
        storage.put("c1", "r1", name, &bands(40, 30)).unwrap();
        let thumbs = Thumbs::new(2, 50_000_000, 64 << 20);
        let listed = vec!["20x10".to_string()];
        let s = thumbs
            .serve(storage.clone(), "c1", "r1", name, Some("20x10"), &listed)
            .await
            .unwrap()
            .unwrap();
        assert!(s.thumb);
        assert_eq!(s.name, format!("20x10_{name}"));
        let p = root.join(format!("storage/c1/r1/thumbs_{name}/20x10_{name}"));
        assert_eq!(std::fs::read(&p).unwrap(), s.data);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
        // Served from the file later on (a marker proves it).
        std::fs::write(&p, b"kept").unwrap();
        let again = thumbs
            .serve(storage.clone(), "c1", "r1", name, Some("20x10"), &listed)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&again.data[..], b"kept");
        // Unlisted, malformed, absent: the original.
        for q in [Some("30x30"), Some("20x10 "), Some(""), None] {
            let o = thumbs
                .serve(storage.clone(), "c1", "r1", name, q, &listed)
                .await
                .unwrap()
                .unwrap();
            assert!(!o.thumb, "{q:?}");
            assert_eq!(o.name, name);
        }
        assert!(thumbs.flights.lock().unwrap().is_empty());
        storage.remove("c1", "r1", &[name.to_string()]);
        assert!(!p.parent().unwrap().exists());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn stale_temporary_files_and_non_images() {
        let root = scratch("stale");
        let storage = Storage::Local(Local::new(&root));
        let name = "pic_abcdefghij.png";
        storage.put("c1", "r1", name, &bands(40, 30)).unwrap();
        let dir = root.join(format!("storage/c1/r1/thumbs_{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!(".100x100_{name}.tmp")), b"half").unwrap();
        let thumbs = Thumbs::new(1, 50_000_000, 64 << 20);
        let s = thumbs
            .serve(storage.clone(), "c1", "r1", name, Some("100x100"), &[])
            .await
            .unwrap()
            .unwrap();
        assert!(s.thumb, "a crash's leftover doesn't block the thumb");
        storage
            .put("c1", "r1", "notes_abcdefghij.txt", b"words")
            .unwrap();
        let t = thumbs
            .serve(
                storage.clone(),
                "c1",
                "r1",
                "notes_abcdefghij.txt",
                Some("100x100"),
                &[],
            )
            .await
            .unwrap()
            .unwrap();
        assert!(!t.thumb);
        assert_eq!(&t.data[..], b"words");
        assert!(thumbs
            .serve(
                storage.clone(),
                "c1",
                "r1",
                "gone_abcdefghij.png",
                Some("100x100"),
                &[]
            )
            .await
            .unwrap()
            .is_none());
        assert_eq!(thumbs.free_workers(), 1);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_are_bounded_and_concurrent_requests_all_get_the_thumb() {
        let root = scratch("workers");
        let storage = Storage::Local(Local::new(&root));
        let name = "pic_abcdefghij.png";
        storage.put("c1", "r1", name, &bands(300, 300)).unwrap();
        let mut thumbs = Thumbs::new(1, 50_000_000, 64 << 20);
        thumbs.wait = Duration::from_millis(200);
        let thumbs = Arc::new(thumbs);
        let file = root.join(format!("storage/c1/r1/thumbs_{name}/100x100_{name}"));
        // The only worker is busy: after the wait, the original.
        let busy = thumbs.workers.clone().acquire_owned().await.unwrap();
        let s = thumbs
            .serve(storage.clone(), "c1", "r1", name, Some("100x100"), &[])
            .await
            .unwrap()
            .unwrap();
        assert!(!s.thumb);
        assert!(!file.exists());
        drop(busy);
        // Many requests for one thumb at once: one makes it, all get it.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (t, st) = (thumbs.clone(), storage.clone());
                tokio::spawn(async move {
                    t.serve(st, "c1", "r1", name, Some("100x100"), &[])
                        .await
                        .unwrap()
                        .unwrap()
                })
            })
            .collect();
        let mut bodies = Vec::new();
        for t in tasks {
            let s = t.await.unwrap();
            assert!(s.thumb);
            bodies.push(s.data);
        }
        let made = std::fs::read(&file).unwrap();
        assert!(bodies.iter().all(|b| b[..] == made[..]));
        assert_eq!(thumbs.free_workers(), 1);
        assert!(thumbs.flights.lock().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&root);
    }
}
