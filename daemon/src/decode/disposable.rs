//! Which coded frames no other frame is predicted from, so a frame the
//! consumer will not use can be dropped before it is decoded at all.
//!
//! In H.264 these are the pictures whose slices have `nal_ref_idc` 0: the
//! B-frames between references that x264 and most encoders write, about
//! half the frames of an upload (394 of the 795 of the bench's 720p clip).
//! The standard lets a decoder discard them (temporal scalability relies on
//! it; libav's `skip_frame=noref` does it inside the decoder), and the
//! frames left decode to the same pixels. An intra-only stream (Motion
//! JPEG) has no references at all.
//!
//! Other codecs are decoded whole: in H.265 a "non-reference" picture may
//! still be referenced by a higher temporal layer, and VP8/VP9/AV1 would
//! need their frame headers parsed.

use gstreamer as gst;
use h264_reader::annexb::AnnexBReader;
use h264_reader::avcc::AvcDecoderConfigurationRecord;
use h264_reader::nal::{Nal, NalHeader, RefNal, UnitType};
use h264_reader::push::NalInterest;

/// How a decoder's input is framed, as far as telling disposable frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bitstream {
    /// H.264 access units as length-prefixed NAL units (MP4, Matroska,
    /// RTP depayloaded as `avc`), the length taking this many bytes.
    H264Avc { length_size: usize },
    /// H.264 access units in Annex B byte-stream form (MPEG-TS, raw
    /// `.h264`).
    H264AnnexB,
    /// Every frame stands alone.
    IntraOnly,
}

impl Bitstream {
    /// The framing the caps describe, or `None` when no frame may be
    /// dropped before decoding (another codec, or H.264 not aligned to
    /// access units).
    pub(super) fn of(caps: &gst::CapsRef) -> Option<Bitstream> {
        let s = caps.structure(0)?;
        match s.name().as_str() {
            "image/jpeg" => Some(Bitstream::IntraOnly),
            "video/x-h264" => {
                if s.get::<&str>("alignment").ok()? != "au" {
                    return None;
                }
                match s.get::<&str>("stream-format").ok()? {
                    "avc" | "avc3" => {
                        let data = s.get::<gst::Buffer>("codec_data").ok()?;
                        let map = data.map_readable().ok()?;
                        let record =
                            AvcDecoderConfigurationRecord::try_from(map.as_slice()).ok()?;
                        Some(Bitstream::H264Avc {
                            length_size: usize::from(record.length_size_minus_one()) + 1,
                        })
                    }
                    "byte-stream" => Some(Bitstream::H264AnnexB),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Whether no other frame is predicted from the frame coded in `au`.
    /// Anything that cannot be read as such is kept.
    pub(super) fn is_disposable(self, au: &[u8]) -> bool {
        match self {
            Bitstream::IntraOnly => true,
            Bitstream::H264Avc { length_size } => {
                first_slice_avc(au, length_size).is_some_and(|h| h.nal_ref_idc() == 0)
            }
            Bitstream::H264AnnexB => first_slice_annex_b(au).is_some_and(|h| h.nal_ref_idc() == 0),
        }
    }
}

/// A coded slice of a picture. Every slice of a picture has the same
/// `nal_ref_idc` being 0 or not (H.264 7.4.1), so the first one tells.
fn is_slice(header: NalHeader) -> bool {
    matches!(
        header.nal_unit_type(),
        UnitType::SliceLayerWithoutPartitioningNonIdr
            | UnitType::SliceDataPartitionALayer
            | UnitType::SliceLayerWithoutPartitioningIdr
    )
}

/// The header of the first slice among length-prefixed NAL units.
fn first_slice_avc(mut au: &[u8], length_size: usize) -> Option<NalHeader> {
    while au.len() > length_size {
        let (len, rest) = au.split_at(length_size);
        let len = len.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
        let nal = rest.get(..len).filter(|n| !n.is_empty())?;
        let header = NalHeader::new(nal[0]).ok()?;
        if is_slice(header) {
            return Some(header);
        }
        au = &rest[len..];
    }
    None
}

/// The header of the first slice in an Annex B access unit.
fn first_slice_annex_b(au: &[u8]) -> Option<NalHeader> {
    let mut found = None;
    let mut reader = AnnexBReader::accumulate(|nal: RefNal<'_>| {
        if found.is_none() {
            found = nal.header().ok().filter(|h| is_slice(*h));
        }
        // Only the header byte is wanted, never the payload.
        NalInterest::Ignore
    });
    reader.push(au);
    drop(reader);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NAL header bytes: `nal_ref_idc` in bits 5–6, the type in bits 0–4.
    const AUD: u8 = 0x09;
    const SEI: u8 = 0x06;
    const IDR: u8 = 0x65;
    const REF_SLICE: u8 = 0x41;
    const NONREF_SLICE: u8 = 0x01;

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

    #[test]
    fn the_first_slice_tells_whether_a_picture_is_referenced() {
        let h264 = Bitstream::H264Avc { length_size: 4 };
        for (form, frame) in [
            (h264, avc as fn(&[&[u8]]) -> Vec<u8>),
            (Bitstream::H264AnnexB, annex_b),
        ] {
            let disposable = |nals: &[&[u8]]| form.is_disposable(&frame(nals));
            assert!(disposable(&[&[AUD, 0xf0], &[NONREF_SLICE, 0x9a, 0x00]]));
            assert!(disposable(&[&[SEI, 0x05, 0x01], &[NONREF_SLICE, 0x9e]]));
            assert!(!disposable(&[&[AUD, 0x30], &[REF_SLICE, 0x9a]]));
            assert!(!disposable(&[&[IDR, 0x88, 0x84]]));
            // No slice at all, or an empty unit: kept, to be safe.
            assert!(!disposable(&[&[AUD, 0xf0], &[SEI, 0x05]]));
            assert!(!form.is_disposable(&[]));
        }
        // A length running past the end is not read past it.
        assert!(!h264.is_disposable(&[0, 0, 0, 9, NONREF_SLICE, 0x9a]));
        assert!(Bitstream::IntraOnly.is_disposable(&[0xff, 0xd8]));
    }

    #[test]
    fn the_caps_say_how_units_are_framed() {
        gst::init().unwrap();
        // avcC with lengthSizeMinusOne 3, one SPS and one PPS.
        let record = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2, 0x68, 0xee,
        ];
        let caps = |format: &str, alignment: &str| {
            gst::Caps::builder("video/x-h264")
                .field("stream-format", format)
                .field("alignment", alignment)
                .field("codec_data", gst::Buffer::from_slice(record))
                .build()
        };
        assert_eq!(
            Bitstream::of(&caps("avc", "au")),
            Some(Bitstream::H264Avc { length_size: 4 })
        );
        assert_eq!(
            Bitstream::of(&caps("byte-stream", "au")),
            Some(Bitstream::H264AnnexB)
        );
        assert_eq!(Bitstream::of(&caps("byte-stream", "nal")), None);
        assert_eq!(
            Bitstream::of(&gst::Caps::builder("image/jpeg").build()),
            Some(Bitstream::IntraOnly)
        );
        assert_eq!(
            Bitstream::of(&gst::Caps::builder("video/x-h265").build()),
            None
        );
    }
}
