//! A text-line detector's probability map to four-cornered boxes, decoded
//! as PaddleOCR decodes its DB detector (rapidocr's settings): threshold the
//! map, dilate it by one pixel, trace each region's outline, take the
//! outline's minimum-area rectangle, score it by the map's mean inside it,
//! and grow it ("unclip") from the characters' core to their full height.
//!
//! PaddleOCR grows the region's polygon with a polygon clipper and takes the
//! minimum-area rectangle again. Growing a rectangle by a distance `d` on
//! every side (round joins) and boxing it gives the rectangle `d` larger on
//! every side, so the same box is computed here in closed form.

use image::{GrayImage, Luma};
use imageproc::contours::{BorderType, find_contours};
use imageproc::geometry::min_area_rect;
use imageproc::point::Point;

use super::decode::{Corners, PlateDetection};
use crate::BBox;

/// Regions beyond this many (largest first) are not scored: PaddleOCR's
/// `max_candidates`, a bound on the work a noisy map can cause.
const MAX_CANDIDATES: usize = 1000;

/// The manifest's `text-lines` decoding ([`crate::detect::decode::DecodeSpec::TextLines`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextLineParams {
    pub thresh: f32,
    pub unclip_ratio: f32,
    pub min_size: f32,
}

/// The text lines of a `width` × `height` map (row-major), scoring at least
/// `min_score`, best first, in map pixels. Corners are in reading order
/// for a line wider than tall: the longer side is taken as the text's
/// direction, left to right.
pub fn decode_text_lines(
    map: &[f32],
    width: usize,
    height: usize,
    params: &TextLineParams,
    min_score: f32,
) -> Vec<PlateDetection> {
    debug_assert_eq!(map.len(), width * height);
    let bitmap = dilated_bitmap(map, width, height, params.thresh);
    let mut outlines: Vec<Vec<Point<f32>>> = find_contours::<u32>(&bitmap)
        .into_iter()
        .filter(|c| c.border_type == BorderType::Outer)
        .map(|c| {
            c.points
                .iter()
                .map(|p| Point::new(p.x as f32, p.y as f32))
                .collect()
        })
        .collect();
    outlines.sort_by_key(|o| std::cmp::Reverse(o.len()));
    outlines.truncate(MAX_CANDIDATES);
    let mut lines: Vec<PlateDetection> = outlines
        .iter()
        .filter_map(|outline| {
            let rect = Rect::of(outline);
            if rect.height < params.min_size {
                return None;
            }
            let score = mean_inside(map, width, height, &rect.corners());
            if score < min_score {
                return None;
            }
            let grown = rect.grown(params.unclip_ratio);
            if grown.height < params.min_size + 2.0 {
                return None;
            }
            let corners = grown.corners();
            Some(PlateDetection {
                bbox: bounds(&corners),
                score,
                corners,
            })
        })
        .collect();
    lines.sort_by(|a, b| b.score.total_cmp(&a.score));
    lines
}

/// `map > thresh`, dilated with PaddleOCR's 2 × 2 kernel: a pixel is set
/// when it or its left, upper or upper-left neighbour is above.
fn dilated_bitmap(map: &[f32], width: usize, height: usize, thresh: f32) -> GrayImage {
    let above = |x: usize, y: usize| map[y * width + x] > thresh;
    GrayImage::from_fn(width as u32, height as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let set = above(x, y)
            || (x > 0 && above(x - 1, y))
            || (y > 0 && (above(x, y - 1) || (x > 0 && above(x - 1, y - 1))));
        Luma([if set { 255 } else { 0 }])
    })
}

/// A rotated rectangle: centre, the unit direction of its longer side
/// (pointing right), and its side lengths along and across it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    centre: [f32; 2],
    along: [f32; 2],
    width: f32,
    height: f32,
}

impl Rect {
    /// The minimum-area rectangle around `points` (not empty).
    fn of(points: &[Point<f32>]) -> Self {
        let r = min_area_rect(points);
        let centre = [
            r.iter().map(|p| p.x).sum::<f32>() / 4.0,
            r.iter().map(|p| p.y).sum::<f32>() / 4.0,
        ];
        let side = |a: Point<f32>, b: Point<f32>| [b.x - a.x, b.y - a.y];
        let (s1, s2) = (side(r[0], r[1]), side(r[1], r[2]));
        let len = |s: [f32; 2]| s[0].hypot(s[1]);
        let (long, width, height) = if len(s1) >= len(s2) {
            (s1, len(s1), len(s2))
        } else {
            (s2, len(s2), len(s1))
        };
        let along = if width > 0.0 {
            let u = [long[0] / width, long[1] / width];
            if u[0] < 0.0 { [-u[0], -u[1]] } else { u }
        } else {
            [1.0, 0.0]
        };
        Self {
            centre,
            along,
            width,
            height,
        }
    }

    /// Grown by `area × ratio / perimeter` on every side.
    fn grown(&self, ratio: f32) -> Self {
        let perimeter = 2.0 * (self.width + self.height);
        let d = if perimeter > 0.0 {
            self.width * self.height * ratio / perimeter
        } else {
            0.0
        };
        Self {
            width: self.width + 2.0 * d,
            height: self.height + 2.0 * d,
            ..*self
        }
    }

    /// Top-left, top-right, bottom-right, bottom-left as the line reads.
    fn corners(&self) -> Corners {
        let [cx, cy] = self.centre;
        let [ux, uy] = self.along;
        // Across the line, pointing down the image.
        let (vx, vy) = (-uy, ux);
        let (hw, hh) = (self.width / 2.0, self.height / 2.0);
        let at = |a: f32, b: f32| {
            [
                cx + a * hw * ux + b * hh * vx,
                cy + a * hw * uy + b * hh * vy,
            ]
        };
        [at(-1.0, -1.0), at(1.0, -1.0), at(1.0, 1.0), at(-1.0, 1.0)]
    }
}

/// The map's mean over the pixels inside the convex quadrilateral `q`
/// (edges included), as PaddleOCR's "fast" box score; 0 when it holds none.
fn mean_inside(map: &[f32], width: usize, height: usize, q: &Corners) -> f32 {
    let b = bounds(q);
    let clamp = |v: f32, hi: usize| (v.max(0.0) as usize).min(hi - 1);
    let (x0, x1) = (clamp(b.x1.floor(), width), clamp(b.x2.ceil(), width));
    let (y0, y1) = (clamp(b.y1.floor(), height), clamp(b.y2.ceil(), height));
    let (mut sum, mut n) = (0.0f64, 0usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if inside(q, x as f32, y as f32) {
                sum += f64::from(map[y * width + x]);
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { (sum / n as f64) as f32 }
}

/// Whether (x, y) lies in the convex quadrilateral `q` or on its edges,
/// whichever way round its corners go.
fn inside(q: &Corners, x: f32, y: f32) -> bool {
    // Signed distance of (x, y) from each edge's line; half a pixel of
    // slack keeps the pixels a rectangle through pixel centres runs along.
    let d: [f32; 4] = std::array::from_fn(|k| {
        let (a, b) = (q[k], q[(k + 1) % 4]);
        let len = (b[0] - a[0]).hypot(b[1] - a[1]).max(f32::EPSILON);
        ((b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])) / len
    });
    d.iter().all(|&v| v >= -0.5) || d.iter().all(|&v| v <= 0.5)
}

fn bounds(q: &Corners) -> BBox {
    let xs = q.iter().map(|p| p[0]);
    let ys = q.iter().map(|p| p[1]);
    BBox::new(
        xs.clone().fold(f32::INFINITY, f32::min),
        ys.clone().fold(f32::INFINITY, f32::min),
        xs.fold(f32::NEG_INFINITY, f32::max),
        ys.fold(f32::NEG_INFINITY, f32::max),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: TextLineParams = TextLineParams {
        thresh: 0.3,
        unclip_ratio: 1.6,
        min_size: 3.0,
    };

    /// A `w` × `h` map with `value` on [x0, x1) × [y0, y1).
    fn map_with(w: usize, h: usize, blocks: &[(usize, usize, usize, usize, f32)]) -> Vec<f32> {
        let mut m = vec![0.0; w * h];
        for &(x0, y0, x1, y1, v) in blocks {
            for y in y0..y1 {
                for x in x0..x1 {
                    m[y * w + x] = v;
                }
            }
        }
        m
    }

    #[test]
    fn a_line_is_boxed_scored_and_grown_to_full_height() {
        // A 40 × 10 line of text core at (20, 30).
        let m = map_with(100, 60, &[(20, 30, 60, 40, 0.9)]);
        let lines = decode_text_lines(&m, 100, 60, &PARAMS, 0.5);
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        // The dilated region spans 20..=60 × 30..=40 (outline pixels): the
        // score averages its 41 × 11 pixels, 40 × 10 of them at 0.9; the
        // 40 × 10 box is grown by 40·10·1.6 / 100 = 6.4 on each side.
        assert!((l.score - 0.9 * 400.0 / 451.0).abs() < 0.01, "{l:?}");
        let b = l.bbox;
        assert!(
            (b.x1 - 13.6).abs() < 0.6 && (b.x2 - 66.4).abs() < 0.6,
            "{b:?}"
        );
        assert!(
            (b.y1 - 23.6).abs() < 0.6 && (b.y2 - 46.4).abs() < 0.6,
            "{b:?}"
        );
        // Reading order: top-left first, clockwise.
        let [tl, tr, br, bl] = l.corners;
        assert!(tl[0] < tr[0] && tl[1] < bl[1] && br[0] > bl[0] && br[1] > tr[1]);
    }

    #[test]
    fn a_sloping_line_keeps_its_slope_and_reads_left_to_right() {
        // A staircase of blocks falling 1 px per 4 px to the right.
        let blocks: Vec<_> = (0..12)
            .map(|k| (10 + 4 * k, 20 + k, 14 + 4 * k, 30 + k, 0.8))
            .collect();
        let m = map_with(80, 60, &blocks);
        let lines = decode_text_lines(&m, 80, 60, &PARAMS, 0.5);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let [tl, tr, _, bl] = lines[0].corners;
        assert!(
            tr[0] > tl[0] && tr[1] > tl[1],
            "falls to the right: {tl:?} {tr:?}"
        );
        assert!(bl[1] > tl[1]);
    }

    #[test]
    fn weak_thin_and_faint_regions_are_dropped() {
        let m = map_with(
            100,
            60,
            &[
                (5, 5, 45, 15, 0.9),   // a line
                (60, 5, 95, 15, 0.35), // above thresh, below the score
                (5, 40, 90, 41, 0.9),  // one pixel thin (two once dilated)
                (60, 40, 90, 50, 0.2), // below thresh
            ],
        );
        let lines = decode_text_lines(&m, 100, 60, &PARAMS, 0.5);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].bbox.x2 < 55.0);
    }

    #[test]
    fn lines_come_best_first() {
        let m = map_with(100, 60, &[(5, 5, 45, 15, 0.6), (5, 30, 45, 40, 0.95)]);
        let lines = decode_text_lines(&m, 100, 60, &PARAMS, 0.5);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].score > lines[1].score && lines[0].bbox.y1 > 20.0);
    }

    #[test]
    fn an_empty_map_has_no_lines() {
        assert!(decode_text_lines(&[0.0; 64], 8, 8, &PARAMS, 0.5).is_empty());
    }
}
