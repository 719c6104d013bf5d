//! Drawing what Wayside saw onto frames: boxes coloured by kind, labels,
//! counting lines and counters. Labels use a built-in 8×8 bitmap font, so
//! the box needs no font files.

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut};
use imageproc::rect::Rect;

use crate::count::PixelLine;
use crate::track::{TrackSnapshot, TrackState};
use crate::{BBox, Detection, Kind};

pub const PEDESTRIAN: Rgb<u8> = Rgb([255, 170, 0]);
pub const VEHICLE: Rgb<u8> = Rgb([0, 200, 255]);
pub const LINE: Rgb<u8> = Rgb([255, 40, 200]);
const INK: Rgb<u8> = Rgb([0, 0, 0]);

pub fn colour(kind: Kind) -> Rgb<u8> {
    match kind {
        Kind::Pedestrian => PEDESTRIAN,
        Kind::Vehicle => VEHICLE,
    }
}

/// Text scale and line thickness that stay readable from 320p to 4K.
fn scale_for(img: &RgbImage) -> u32 {
    (img.width().max(img.height()) / 640).clamp(1, 4)
}

/// A box outline `thickness` pixels wide, clipped to the image.
pub fn draw_box(img: &mut RgbImage, b: &BBox, colour: Rgb<u8>) {
    let t = scale_for(img) as i32 + 1;
    let (w, h) = (img.width() as f32, img.height() as f32);
    let b = b.clamp(w - 1.0, h - 1.0);
    for i in 0..t {
        let (x, y) = (b.x1 as i32 + i, b.y1 as i32 + i);
        let (bw, bh) = (b.width() as i32 - 2 * i, b.height() as i32 - 2 * i);
        if bw < 1 || bh < 1 {
            break;
        }
        draw_hollow_rect_mut(img, Rect::at(x, y).of_size(bw as u32, bh as u32), colour);
    }
}

/// `text` on a filled `bg` tag whose top-left corner is at (x, y).
pub fn draw_label(img: &mut RgbImage, x: i32, y: i32, text: &str, bg: Rgb<u8>) {
    let s = scale_for(img) as i32;
    let (cw, ch) = (8 * s, 8 * s);
    let width = cw * text.chars().count() as i32 + 2 * s;
    draw_filled_rect_mut(
        img,
        Rect::at(x, y).of_size(width.max(1) as u32, (ch + 2 * s) as u32),
        bg,
    );
    for (i, c) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(c) else {
            continue;
        };
        let ox = x + s + i as i32 * cw;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let (px, py) = (ox + col * s, y + s + row as i32 * s);
                    draw_filled_rect_mut(img, Rect::at(px, py).of_size(s as u32, s as u32), INK);
                }
            }
        }
    }
}

/// A thick line from (x1, y1) to (x2, y2) in pixels.
pub fn draw_line(img: &mut RgbImage, from: (f32, f32), to: (f32, f32), colour: Rgb<u8>) {
    let t = scale_for(img) as i32 + 1;
    for d in -t..=t {
        let o = d as f32 * 0.5;
        draw_line_segment_mut(img, (from.0 + o, from.1), (to.0 + o, to.1), colour);
        draw_line_segment_mut(img, (from.0, from.1 + o), (to.0, to.1 + o), colour);
    }
}

/// Every detection as a coloured box with its class and score.
pub fn draw_detections(img: &mut RgbImage, detections: &[Detection]) {
    let s = scale_for(img) as i32;
    for d in detections {
        let c = colour(d.kind);
        draw_box(img, &d.bbox, c);
        let label = format!("{} {:.2}", crate::classes::COCO[d.class_id], d.score);
        draw_label(
            img,
            d.bbox.x1 as i32,
            (d.bbox.y1 as i32 - 10 * s).max(0),
            &label,
            c,
        );
    }
}

/// What an annotated video frame shows besides the picture.
pub struct Overlay<'a> {
    pub tracks: &'a [TrackSnapshot],
    pub line: Option<&'a PixelLine>,
    /// Objects in this frame.
    pub pedestrians_now: u32,
    pub vehicles_now: u32,
    /// Objects that have passed since the start.
    pub pedestrians_passed: u32,
    pub vehicles_passed: u32,
}

/// Confirmed tracks seen in this frame with their ids, the counting line, and
/// the counters in the top-left corner.
pub fn draw_overlay(img: &mut RgbImage, o: &Overlay) {
    let s = scale_for(img) as i32;
    if let Some(line) = o.line {
        draw_line(img, line.a, line.b, LINE);
    }
    for t in o
        .tracks
        .iter()
        .filter(|t| t.state == TrackState::Confirmed && t.detection.is_some())
    {
        let c = colour(t.kind);
        draw_box(img, &t.bbox, c);
        let label = format!("#{} {}", t.id, crate::classes::COCO[t.class_id]);
        draw_label(
            img,
            t.bbox.x1 as i32,
            (t.bbox.y1 as i32 - 10 * s).max(0),
            &label,
            c,
        );
    }
    let ped = format!(
        "pedestrians {} passed {}",
        o.pedestrians_now, o.pedestrians_passed
    );
    let veh = format!(
        "vehicles    {} passed {}",
        o.vehicles_now, o.vehicles_passed
    );
    draw_label(img, 4 * s, 4 * s, &ped, PEDESTRIAN);
    draw_label(img, 4 * s, 16 * s, &veh, VEHICLE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_labels_land_where_asked() {
        let mut img = RgbImage::new(200, 100);
        let det = Detection {
            bbox: BBox::new(20.0, 30.0, 80.0, 90.0),
            score: 0.9,
            class_id: 0,
            kind: Kind::Pedestrian,
        };
        draw_detections(&mut img, &[det]);
        assert_eq!(*img.get_pixel(20, 60), PEDESTRIAN); // left edge
        assert_eq!(*img.get_pixel(50, 60), Rgb([0, 0, 0])); // inside untouched
        // The label tag sits above the box.
        assert!((20..80).any(|x| *img.get_pixel(x, 22) == PEDESTRIAN));
    }

    #[test]
    fn drawing_off_the_image_does_not_panic() {
        let mut img = RgbImage::new(50, 50);
        draw_box(&mut img, &BBox::new(-30.0, -30.0, 500.0, 500.0), VEHICLE);
        draw_label(&mut img, 45, 45, "truck 0.99", VEHICLE);
        draw_line(&mut img, (-10.0, 25.0), (90.0, 25.0), LINE);
        assert_eq!(*img.get_pixel(0, 0), VEHICLE);
    }
}
