//! Which coded frames no other frame is predicted from, so a frame the
//! consumer will not use can be dropped before it is decoded at all.
//!
//! In H.264 these are the pictures whose slices have `nal_ref_idc` 0: the
//! B-frames between references that x264 and most encoders write, about
//! half the frames of an upload (394 of the 795 of the bench's 720p clip).
//! In H.265 they are the sub-layer non-reference pictures (`TRAIL_N`,
//! `TSA_N`, `STSA_N`, `RADL_N`, `RASL_N`) of the highest temporal sub-layer
//! the stream's SPS declares: a lower sub-layer's non-reference picture may
//! still be referenced by a higher one (H.265 3.132). The standards let a
//! decoder discard them (temporal scalability relies on it; libav's
//! `skip_frame=noref` does it inside the decoder, with the same rules), and
//! the frames left decode to the same pixels. An intra-only stream (Motion
//! JPEG) has no references at all.
//!
//! VP8/VP9/AV1 are decoded whole: they would need their frame headers
//! parsed.
//!
//! Of H.265, only fields at fixed positions are read: the two-byte NAL unit
//! header, the byte after an SPS's header and the `hvcC` record's layout.
//! The crates that parse whole SPSs (`scuffle-h265`) call themselves
//! unstable, and a field past the profile would need all of it parsed.

use std::ops::ControlFlow;

use gstreamer as gst;
use h264_reader::annexb::AnnexBReader;
use h264_reader::avcc::AvcDecoderConfigurationRecord;
use h264_reader::nal::{Nal, NalHeader, RefNal, UnitType};
use h264_reader::push::NalInterest;

/// How a decoder's input is coded, as far as telling disposable frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bitstream {
    H264(Framing),
    H265 {
        framing: Framing,
        /// The highest TemporalId any SPS seen so far allows; `None` until
        /// an SPS is seen, and then no picture is disposable.
        highest_sub_layer: Option<u8>,
    },
    /// Every frame stands alone.
    IntraOnly,
}

/// How NAL units are delimited within an access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// Each unit prefixed by its length in this many bytes (MP4, Matroska,
    /// RTP depayloaded as `avc`/`hvc1`).
    Lengths(usize),
    /// Annex B start codes (MPEG-TS, raw `.h264`/`.h265`).
    AnnexB,
}

/// H.265 NAL unit types (H.265 table 7-1).
const HEVC_SPS: u8 = 33;
const HEVC_FIRST_NON_VCL: u8 = 32;

impl Bitstream {
    /// The coding the caps describe, or `None` when no frame may be
    /// dropped before decoding (another codec, or units not aligned to
    /// access units).
    pub(super) fn of(caps: &gst::CapsRef) -> Option<Bitstream> {
        let s = caps.structure(0)?;
        let codec_data = || {
            let data = s.get::<gst::Buffer>("codec_data").ok()?;
            let map = data.map_readable().ok()?;
            Some(map.as_slice().to_vec())
        };
        match s.name().as_str() {
            "image/jpeg" => Some(Bitstream::IntraOnly),
            "video/x-h264" | "video/x-h265" if s.get::<&str>("alignment").ok()? != "au" => None,
            "video/x-h264" => match s.get::<&str>("stream-format").ok()? {
                "avc" | "avc3" => {
                    let record = codec_data()?;
                    let record = AvcDecoderConfigurationRecord::try_from(record.as_slice()).ok()?;
                    Some(Bitstream::H264(Framing::Lengths(
                        usize::from(record.length_size_minus_one()) + 1,
                    )))
                }
                "byte-stream" => Some(Bitstream::H264(Framing::AnnexB)),
                _ => None,
            },
            "video/x-h265" => match s.get::<&str>("stream-format").ok()? {
                "hvc1" | "hev1" => {
                    let record = codec_data()?;
                    let (length_size, highest_sub_layer) = hvcc(&record)?;
                    Some(Bitstream::H265 {
                        framing: Framing::Lengths(length_size),
                        highest_sub_layer,
                    })
                }
                "byte-stream" => Some(Bitstream::H265 {
                    framing: Framing::AnnexB,
                    highest_sub_layer: None,
                }),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether no other frame is predicted from the frame coded in `au`.
    /// Anything that cannot be read as such is kept. An H.265 stream's
    /// SPS in `au` is remembered for the frames after it.
    pub(super) fn is_disposable(&mut self, au: &[u8]) -> bool {
        match self {
            Bitstream::IntraOnly => true,
            Bitstream::H264(framing) => {
                let mut first_slice = None;
                for_each_nal(au, *framing, |nal| {
                    match NalHeader::new(nal[0]).ok().filter(|h| is_slice(*h)) {
                        Some(header) => {
                            // Every slice of a picture has the same
                            // `nal_ref_idc` being 0 or not (H.264 7.4.1).
                            first_slice = Some(header.nal_ref_idc() == 0);
                            ControlFlow::Break(())
                        }
                        None => ControlFlow::Continue(()),
                    }
                });
                first_slice.unwrap_or(false)
            }
            Bitstream::H265 {
                framing,
                highest_sub_layer,
            } => {
                let mut pictures = None;
                for_each_nal(au, *framing, |nal| {
                    let Some(header) = HevcHeader::of(nal) else {
                        pictures = Some(false);
                        return ControlFlow::Break(());
                    };
                    if header.unit_type == HEVC_SPS {
                        let highest = sps_highest_sub_layer(nal);
                        *highest_sub_layer = highest.max(*highest_sub_layer);
                    } else if header.unit_type < HEVC_FIRST_NON_VCL {
                        // Every picture of the unit (the base layer's and
                        // any other layer's) must be one no other needs.
                        let disposable = header.layer_id == 0
                            && header.is_sub_layer_non_reference()
                            && Some(header.temporal_id) == *highest_sub_layer;
                        pictures = Some(pictures.unwrap_or(true) && disposable);
                        if !disposable {
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                });
                pictures.unwrap_or(false)
            }
        }
    }
}

/// A coded slice of an H.264 picture.
fn is_slice(header: NalHeader) -> bool {
    matches!(
        header.nal_unit_type(),
        UnitType::SliceLayerWithoutPartitioningNonIdr
            | UnitType::SliceDataPartitionALayer
            | UnitType::SliceLayerWithoutPartitioningIdr
    )
}

/// Calls `f` with each NAL unit of `au` (non-empty, its header first) until
/// it breaks. A unit running past the end of `au` ends the walk.
fn for_each_nal(au: &[u8], framing: Framing, mut f: impl FnMut(&[u8]) -> ControlFlow<()>) {
    match framing {
        Framing::Lengths(length_size) => {
            let mut au = au;
            while au.len() > length_size {
                let (len, rest) = au.split_at(length_size);
                let len = len.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
                let Some(nal) = rest.get(..len).filter(|n| !n.is_empty()) else {
                    return;
                };
                if f(nal).is_break() {
                    return;
                }
                au = &rest[len..];
            }
        }
        Framing::AnnexB => {
            let mut done = false;
            let mut reader = AnnexBReader::accumulate(|nal: RefNal<'_>| {
                // The whole unit is pushed at once, so the first chunk holds
                // all of the NAL unit that is there.
                let mut bytes = nal.reader();
                if !done {
                    let head = std::io::BufRead::fill_buf(&mut bytes).unwrap_or_default();
                    done = head.is_empty() || f(head).is_break();
                }
                // Only the headers are wanted, never the payload.
                NalInterest::Ignore
            });
            reader.push(au);
        }
    }
}

/// An H.265 NAL unit header (H.265 7.3.1.2).
#[derive(Debug, Clone, Copy)]
struct HevcHeader {
    unit_type: u8,
    layer_id: u8,
    temporal_id: u8,
}

impl HevcHeader {
    fn of(nal: &[u8]) -> Option<HevcHeader> {
        let [b0, b1, ..] = *nal else {
            return None;
        };
        let temporal_id_plus1 = b1 & 0x07;
        (b0 & 0x80 == 0 && temporal_id_plus1 != 0).then(|| HevcHeader {
            unit_type: b0 >> 1,
            layer_id: (b0 & 1) << 5 | b1 >> 3,
            temporal_id: temporal_id_plus1 - 1,
        })
    }

    /// `TRAIL_N`, `TSA_N`, `STSA_N`, `RADL_N`, `RASL_N`; the reserved
    /// non-reference types are kept, their use unknown.
    fn is_sub_layer_non_reference(self) -> bool {
        matches!(self.unit_type, 0 | 2 | 4 | 6 | 8)
    }
}

/// `sps_max_sub_layers_minus1`: the highest TemporalId of pictures that
/// use the SPS in `nal` (H.265 7.3.2.2). The byte after the header cannot
/// hold an emulation-prevention byte: the header is never `00 00`.
fn sps_highest_sub_layer(nal: &[u8]) -> Option<u8> {
    nal.get(2).map(|b| (b >> 1) & 0x07)
}

/// The NAL unit length size and the highest sub-layer of the SPSs in an
/// `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 8.3.3.1).
fn hvcc(record: &[u8]) -> Option<(usize, Option<u8>)> {
    const ARRAYS: usize = 22;
    let length_size = usize::from(record.get(ARRAYS - 1)? & 0x03) + 1;
    let mut highest = None;
    let mut rest = record.get(ARRAYS + 1..)?;
    for _ in 0..*record.get(ARRAYS)? {
        let (&[kind, n0, n1], tail) = rest.split_first_chunk::<3>()?;
        rest = tail;
        for _ in 0..u16::from_be_bytes([n0, n1]) {
            let (&len, tail) = rest.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_be_bytes(len));
            let nal = tail.get(..len)?;
            if kind & 0x3f == HEVC_SPS {
                highest = sps_highest_sub_layer(nal).max(highest);
            }
            rest = &tail[len..];
        }
    }
    Some((length_size, highest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// H.264 NAL header bytes: `nal_ref_idc` in bits 5–6, the type in bits
    /// 0–4.
    const AUD: u8 = 0x09;
    const SEI: u8 = 0x06;
    const IDR: u8 = 0x65;
    const REF_SLICE: u8 = 0x41;
    const NONREF_SLICE: u8 = 0x01;

    /// H.265 NAL headers: the type in bits 1–6 of the first byte, the
    /// layer across the two, TemporalId + 1 in bits 0–2 of the second.
    const HEVC_AUD: [u8; 3] = [0x46, 0x01, 0x50];
    const HEVC_IDR: [u8; 3] = [0x26, 0x01, 0xaf];
    const TRAIL_R: [u8; 3] = [0x02, 0x01, 0xd0];
    const TRAIL_N: [u8; 3] = [0x00, 0x01, 0xd0];
    /// `TSA_N` at TemporalId 1.
    const TSA_N_1: [u8; 3] = [0x04, 0x02, 0xd0];
    /// `TRAIL_N` of layer 1.
    const TRAIL_N_LAYER_1: [u8; 3] = [0x00, 0x09, 0xd0];

    /// An SPS whose pictures reach TemporalId `highest`.
    fn sps(highest: u8) -> [u8; 3] {
        [0x42, 0x01, highest << 1 | 1]
    }

    fn avc(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| {
                (n.len() as u32)
                    .to_be_bytes()
                    .into_iter()
                    .chain(n.iter().copied())
            })
            .collect()
    }

    fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| [0, 0, 0, 1].into_iter().chain(n.iter().copied()))
            .collect()
    }

    type Frame = fn(&[&[u8]]) -> Vec<u8>;
    const FRAMINGS: [(Framing, Frame); 2] = [
        (Framing::Lengths(4), avc as Frame),
        (Framing::AnnexB, annex_b as Frame),
    ];

    #[test]
    fn the_first_slice_tells_whether_an_h264_picture_is_referenced() {
        for (framing, frame) in FRAMINGS {
            let disposable = |nals: &[&[u8]]| Bitstream::H264(framing).is_disposable(&frame(nals));
            assert!(disposable(&[&[AUD, 0xf0], &[NONREF_SLICE, 0x9a, 0x00]]));
            assert!(disposable(&[&[SEI, 0x05, 0x01], &[NONREF_SLICE, 0x9e]]));
            assert!(!disposable(&[&[AUD, 0x30], &[REF_SLICE, 0x9a]]));
            assert!(!disposable(&[&[IDR, 0x88, 0x84]]));
            // No slice at all, or an empty unit: kept, to be safe.
            assert!(!disposable(&[&[AUD, 0xf0], &[SEI, 0x05]]));
            assert!(!Bitstream::H264(framing).is_disposable(&[]));
        }
        // A length running past the end is not read past it.
        assert!(!Bitstream::H264(Framing::Lengths(4)).is_disposable(&[0, 0, 0, 9, NONREF_SLICE]));
        assert!(Bitstream::IntraOnly.is_disposable(&[0xff, 0xd8]));
    }

    #[test]
    fn an_h265_picture_is_disposable_only_at_the_highest_sub_layer() {
        for (framing, frame) in FRAMINGS {
            let mut stream = Bitstream::H265 {
                framing,
                highest_sub_layer: None,
            };
            let mut disposable = |nals: &[&[u8]]| stream.is_disposable(&frame(nals));
            // Before any SPS, nothing is known: kept.
            assert!(!disposable(&[&HEVC_AUD, &TRAIL_N]));
            // One sub-layer: every TRAIL_N is the last word.
            assert!(!disposable(&[&HEVC_AUD, &sps(0), &HEVC_IDR]));
            assert!(disposable(&[&HEVC_AUD, &TRAIL_N, &TRAIL_N]));
            assert!(!disposable(&[&HEVC_AUD, &TRAIL_R]));
            // A picture of another layer may predict from the base's.
            assert!(!disposable(&[&TRAIL_N, &TRAIL_N_LAYER_1]));
            assert!(!disposable(&[&HEVC_AUD]));
            // Two sub-layers: sub-layer 1 may predict from a TRAIL_N of
            // sub-layer 0.
            assert!(!disposable(&[&sps(1), &HEVC_IDR]));
            assert!(!disposable(&[&TRAIL_N]));
            assert!(disposable(&[&TSA_N_1]));
            // TSA_N_1's header with the forbidden bit, or TemporalId + 1
            // of 0.
            assert!(!disposable(&[&[0x84, 0x02, 0xd0]]));
            assert!(!disposable(&[&[0x00, 0x00, 0x03]]));
        }
    }

    /// An `hvcC` record: fixed fields with 4-byte lengths, then a VPS and
    /// the SPS `sps`.
    fn hvcc_record(sps: [u8; 3]) -> Vec<u8> {
        let mut record = vec![1; 21];
        record.extend([0x0f, 2]);
        record.extend([0x80 | 32, 0, 1, 0, 3, 0x40, 0x01, 0x0c]);
        record.extend([0x80 | HEVC_SPS, 0, 1, 0, 3]);
        record.extend(sps);
        record
    }

    #[test]
    fn the_hvcc_record_gives_the_length_size_and_the_sub_layers() {
        assert_eq!(hvcc(&hvcc_record(sps(0))), Some((4, Some(0))));
        assert_eq!(hvcc(&hvcc_record(sps(2))), Some((4, Some(2))));
        let record = hvcc_record(sps(0));
        assert_eq!(hvcc(&record[..record.len() - 1]), None, "cut short");
        assert_eq!(hvcc(&record[..23]), None, "arrays missing");
    }

    #[test]
    fn the_caps_say_how_units_are_coded() {
        gst::init().unwrap();
        // avcC with lengthSizeMinusOne 3, one SPS and one PPS.
        let avcc = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2, 0x68, 0xee,
        ];
        let caps = |codec: &str, format: &str, alignment: &str, record: &[u8]| {
            let caps = gst::Caps::builder(codec)
                .field("stream-format", format)
                .field("alignment", alignment)
                .field("codec_data", gst::Buffer::from_slice(record.to_vec()))
                .build();
            Bitstream::of(&caps)
        };
        let h264 = |format, alignment| caps("video/x-h264", format, alignment, &avcc);
        assert_eq!(
            h264("avc", "au"),
            Some(Bitstream::H264(Framing::Lengths(4)))
        );
        assert_eq!(
            h264("byte-stream", "au"),
            Some(Bitstream::H264(Framing::AnnexB))
        );
        assert_eq!(h264("byte-stream", "nal"), None);
        let hvcc = hvcc_record(sps(0));
        let h265 = |format, alignment| caps("video/x-h265", format, alignment, &hvcc);
        assert_eq!(
            h265("hvc1", "au"),
            Some(Bitstream::H265 {
                framing: Framing::Lengths(4),
                highest_sub_layer: Some(0)
            })
        );
        assert_eq!(
            h265("byte-stream", "au"),
            Some(Bitstream::H265 {
                framing: Framing::AnnexB,
                highest_sub_layer: None
            })
        );
        assert_eq!(h265("hvc1", "nal"), None);
        assert_eq!(caps("video/x-h265", "hvc1", "au", &hvcc[..20]), None);
        assert_eq!(
            Bitstream::of(&gst::Caps::builder("image/jpeg").build()),
            Some(Bitstream::IntraOnly)
        );
        assert_eq!(
            Bitstream::of(&gst::Caps::builder("video/x-vp9").build()),
            None
        );
    }
}
