//! Synthetic Chinese licence plates on real vehicle photos, for the plate
//! reader's accuracy test (tests/plates_real.rs) and latency example
//! (examples/plate_latency.rs). No readable plate photo ships in any
//! registry package (tests/fixtures/plates/README.md), so the ground truth
//! is the text drawn here.
//!
//! A plate is drawn flat at 2 px per mm with the layout of GA 36 (blue:
//! 440 × 140 mm, seven 45 × 90 mm characters; green new-energy: 480 × 140
//! mm, eight 43 × 90 mm characters), with the CJK font of Debian's
//! `fonts-wqy-microhei` squeezed into each character cell as plate fonts
//! are. It is then put into a photo of a vehicle where a plate would be,
//! turned (roll), seen from the side (yaw) and from above (pitch), its
//! lighting changed, and the frame blurred, given sensor noise and JPEG
//! compression. Everything comes from one seeded generator: the same seed
//! gives the same plates, poses and noise on every machine.
#![allow(dead_code)] // the test and the example use different parts

use ab_glyph::{Font, FontVec, PxScale, point};
use image::{Rgb, RgbImage, Rgba, RgbaImage};
use imageproc::geometric_transformations::{Border, Interpolation, Projection, warp_into_with};
use wayside_vision::BBox;

/// The font file of Debian's `fonts-wqy-microhei` (WenQuanYi Micro Hei).
pub const FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

/// Loads [`FONT`]; panics with the fix when it is missing.
pub fn font() -> FontVec {
    let bytes = std::fs::read(FONT)
        .unwrap_or_else(|e| panic!("{FONT}: {e}: install the Debian package fonts-wqy-microhei"));
    FontVec::try_from_vec_and_index(bytes, 0).expect("a TrueType collection")
}

/// SplitMix64: a tiny, fixed generator, so the set never depends on a
/// crate's version.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform(1e-7, 1.0);
        let u2 = self.uniform(0.0, 1.0);
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// White on blue: ordinary cars, 7 characters.
    Blue,
    /// Black on a white-to-green gradient: new-energy cars, 8 characters.
    Green,
}

const PROVINCES: &[char] = &[
    '京', '津', '沪', '渝', '冀', '豫', '云', '辽', '黑', '湘', '皖', '鲁', '新', '苏', '浙', '赣',
    '鄂', '桂', '甘', '晋', '蒙', '陕', '吉', '闽', '贵', '粤', '青', '藏', '川', '宁', '琼',
];
/// No I or O on Chinese plates.
const LETTERS: &[char] = &[
    'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'L', 'M', 'N', 'P', 'Q', 'R', 'S', 'T', 'U',
    'V', 'W', 'X', 'Y', 'Z',
];
const DIGITS: &[char] = &['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/// A plausible plate number: province, authority letter, then for blue
/// plates 5 characters (a quarter of them letters), for green ones a small
/// new-energy serial (`D`/`F`, a letter or digit, 4 digits).
pub fn random_text(rng: &mut Rng, style: Style) -> String {
    let mut s = String::new();
    s.push(rng.pick(PROVINCES));
    s.push(rng.pick(LETTERS));
    match style {
        Style::Blue => {
            for _ in 0..5 {
                let c = if rng.uniform(0.0, 1.0) < 0.25 {
                    rng.pick(LETTERS)
                } else {
                    rng.pick(DIGITS)
                };
                s.push(c);
            }
        }
        Style::Green => {
            s.push(rng.pick(&['D', 'F']));
            s.push(if rng.uniform(0.0, 1.0) < 0.3 {
                rng.pick(LETTERS)
            } else {
                rng.pick(DIGITS)
            });
            for _ in 0..4 {
                s.push(rng.pick(DIGITS));
            }
        }
    }
    s
}

/// Pixels per millimetre of the flat plate.
const PX_MM: f32 = 2.0;

/// The flat plate, opaque inside its rounded outline.
pub fn draw_plate(font: &FontVec, text: &str, style: Style) -> RgbaImage {
    let chars: Vec<char> = text.chars().collect();
    // (plate width, character width, left edges of the characters, centre
    // of the separator dot), millimetres.
    let (width_mm, char_w, lefts, dot): (f32, f32, Vec<f32>, f32) = match style {
        Style::Blue => (
            440.0,
            45.0,
            vec![15.5, 72.5, 151.5, 208.5, 265.5, 322.5, 379.5],
            134.5,
        ),
        Style::Green => (
            480.0,
            43.0,
            vec![23.5, 75.5, 153.5, 205.5, 257.5, 309.5, 361.5, 413.5],
            136.0,
        ),
    };
    assert_eq!(
        chars.len(),
        lefts.len(),
        "{text} does not fit a {style:?} plate"
    );
    let (w, h) = ((width_mm * PX_MM) as u32, (140.0 * PX_MM) as u32);
    // Letters and digits on plates are bold (strokes ~10 mm, the font's are
    // thinner): they are thickened by 1.5 mm a side. Chinese characters have
    // many more strokes in the same cell, and as thick would fill it.
    let (mut latin, mut cjk) = (vec![0f32; (w * h) as usize], vec![0f32; (w * h) as usize]);
    for (c, left) in chars.iter().zip(&lefts) {
        let ink = if c.is_ascii() { &mut latin } else { &mut cjk };
        draw_glyph(
            font,
            *c,
            [left * PX_MM, 25.0 * PX_MM, char_w * PX_MM, 90.0 * PX_MM],
            ink,
            w,
        );
    }
    let latin = dilate(&latin, w, h, (1.5 * PX_MM) as i32);
    let cjk = dilate(&cjk, w, h, (0.5 * PX_MM) as i32);
    let ink: Vec<f32> = latin.iter().zip(&cjk).map(|(a, b)| a.max(*b)).collect();
    let radius = 8.0 * PX_MM;
    RgbaImage::from_fn(w, h, |x, y| {
        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
        let (fw, fh) = (w as f32, h as f32);
        // Distance outside the rounded rectangle inset by `inset`.
        let outside = |inset: f32| {
            let r = (radius - inset).max(0.0);
            let qx = (px - fw / 2.0).abs() - (fw / 2.0 - inset - r);
            let qy = (py - fh / 2.0).abs() - (fh / 2.0 - inset - r);
            qx.max(0.0).hypot(qy.max(0.0)) + qx.max(qy).min(0.0) - r
        };
        let alpha = (0.5 - outside(0.0)).clamp(0.0, 1.0);
        // The frame line: 2 mm wide, 3 mm in.
        let frame = (1.0 * PX_MM - (outside(3.0 * PX_MM) + 1.0 * PX_MM).abs()).clamp(0.0, 1.0);
        let t = py / fh;
        let (background, fore): ([f32; 3], [f32; 3]) = match style {
            Style::Blue => (
                [10.0, 55.0 + 10.0 * t, 165.0 + 10.0 * t],
                [245.0, 245.0, 240.0],
            ),
            Style::Green => (
                [235.0 - 150.0 * t, 248.0 - 50.0 * t, 235.0 - 140.0 * t],
                [20.0, 20.0, 20.0],
            ),
        };
        let cover = ink[(y * w + x) as usize].max(frame);
        let mix = |c: usize| background[c] * (1.0 - cover) + fore[c] * cover;
        let dot_d = (px - dot * PX_MM).hypot(py - 70.0 * PX_MM);
        let dot_cover = (5.0 * PX_MM - dot_d + 0.5).clamp(0.0, 1.0);
        let with_dot = |c: usize| mix(c) * (1.0 - dot_cover) + fore[c] * dot_cover;
        Rgba([
            with_dot(0).round() as u8,
            with_dot(1).round() as u8,
            with_dot(2).round() as u8,
            (alpha * 255.0).round() as u8,
        ])
    })
}

/// Draw `c` filling the cell `[x, y, w, h]` vertically, as wide as the
/// glyph's own proportions allow but never wider than the cell, centred.
fn draw_glyph(font: &FontVec, c: char, cell: [f32; 4], ink: &mut [f32], width: u32) {
    let [cx, cy, cw, ch] = cell;
    let id = font.glyph_id(c);
    let probe = font
        .outline_glyph(id.with_scale_and_position(100.0, point(0.0, 0.0)))
        .unwrap_or_else(|| panic!("the font has no {c}"));
    let b = probe.px_bounds();
    let sy = 100.0 * ch / b.height();
    let sx = sy.min(100.0 * cw / b.width());
    let glyph = font
        .outline_glyph(id.with_scale_and_position(PxScale { x: sx, y: sy }, point(0.0, 0.0)))
        .expect("outlined above");
    let b = glyph.px_bounds();
    let (ox, oy) = (cx + (cw - b.width()) / 2.0, cy + (ch - b.height()) / 2.0);
    let height = ink.len() as u32 / width;
    glyph.draw(|gx, gy, v| {
        let (x, y) = ((ox + gx as f32) as u32, (oy + gy as f32) as u32);
        if x < width && y < height {
            let i = (y * width + x) as usize;
            ink[i] = ink[i].max(v.clamp(0.0, 1.0));
        }
    });
}

/// Grey-level dilation by a disc of radius `r`: bolder strokes.
fn dilate(src: &[f32], w: u32, h: u32, r: i32) -> Vec<f32> {
    let (w, h) = (w as i32, h as i32);
    let mut out = vec![0f32; src.len()];
    for y in 0..h {
        for x in 0..w {
            let mut m = 0f32;
            for dy in -r..=r {
                for dx in -r..=r {
                    let (sx, sy) = (x + dx, y + dy);
                    if dx * dx + dy * dy <= r * r && sx >= 0 && sy >= 0 && sx < w && sy < h {
                        m = m.max(src[(sy * w + sx) as usize]);
                    }
                }
            }
            out[(y * w + x) as usize] = m;
        }
    }
    out
}

/// A photo with a vehicle, and where its plate would be (photo pixels).
#[derive(Debug, Clone, Copy)]
pub struct Scene {
    pub name: &'static str,
    pub photo: &'static str,
    /// The part of the photo that becomes the frame.
    pub context: BBox,
    /// The vehicle's box, as a tracker would give it.
    pub vehicle: BBox,
    /// Plate centre and width at the photo's own scale.
    pub plate_centre: [f32; 2],
    pub plate_width: f32,
    /// Range of the photo's rescaling: the distance to the camera.
    pub scale: (f32, f32),
}

/// The vehicles: a car's rear with its (blurred) plate holder, the front of
/// a London bus (where its real, tiny plate is) upscaled, and the side skirt
/// of the Madrid minibus below its "cero emisiones" lettering (text nearby
/// that is not a plate).
pub const SCENES: [Scene; 3] = [
    Scene {
        name: "car rear",
        photo: "licenseplate_motion.jpg",
        context: BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 600.0,
            y2: 482.0,
        },
        vehicle: BBox {
            x1: 10.0,
            y1: 30.0,
            x2: 590.0,
            y2: 440.0,
        },
        plate_centre: [293.0, 262.0],
        plate_width: 125.0,
        scale: (0.5, 1.2),
    },
    Scene {
        name: "bus front",
        photo: "pexels_double_decker_bus.jpg",
        context: BBox {
            x1: 300.0,
            y1: 80.0,
            x2: 546.0,
            y2: 413.0,
        },
        vehicle: BBox {
            x1: 335.0,
            y1: 110.0,
            x2: 478.0,
            y2: 392.0,
        },
        plate_centre: [431.0, 369.0],
        plate_width: 24.0,
        scale: (2.8, 5.2),
    },
    Scene {
        name: "minibus side",
        photo: "bus.jpg",
        context: BBox {
            x1: 0.0,
            y1: 200.0,
            x2: 810.0,
            y2: 780.0,
        },
        vehicle: BBox {
            x1: 0.0,
            y1: 230.0,
            x2: 800.0,
            y2: 730.0,
        },
        plate_centre: [610.0, 655.0],
        plate_width: 120.0,
        scale: (0.5, 1.1),
    },
];

/// The ranges the pose and the camera's degradations are drawn from.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    /// Degrees either way.
    pub roll: f32,
    /// Relative height difference of the plate's two ends (side view).
    pub yaw: f32,
    /// Relative width difference of its top and bottom (view from above).
    pub pitch: f32,
    /// Brightness factor of the plate (shade to sun).
    pub gain: (f32, f32),
    /// Gaussian blur of the frame, σ in pixels (focus, motion).
    pub blur: (f32, f32),
    /// Sensor noise, σ in grey levels.
    pub noise: (f32, f32),
    /// JPEG quality of the frame.
    pub jpeg: (f32, f32),
}

impl Default for Conditions {
    fn default() -> Self {
        Self {
            roll: 7.0,
            yaw: 0.15,
            pitch: 0.08,
            gain: (0.65, 1.1),
            blur: (0.0, 1.3),
            noise: (0.0, 6.0),
            jpeg: (55.0, 95.0),
        }
    }
}

/// One synthetic frame with its truth.
pub struct Sample {
    pub frame: RgbImage,
    /// The vehicle's box in `frame`.
    pub vehicle: BBox,
    pub text: String,
    pub style: Style,
    pub scene: &'static str,
    /// The plate's corners in `frame`, reading order.
    pub corners: [[f32; 2]; 4],
    /// Mean width and height of the plate in `frame`, pixels.
    pub plate_px: (f32, f32),
    pub roll_deg: f32,
    pub yaw: f32,
    pub pitch: f32,
    pub blur: f32,
    pub noise: f32,
    pub jpeg: u8,
}

/// Render `text` as a `style` plate into scene `scene` (given its photo),
/// with pose and degradations drawn from `rng` within `conditions`.
pub fn sample(
    font: &FontVec,
    scene: &'static Scene,
    photo: &RgbImage,
    text: &str,
    style: Style,
    conditions: &Conditions,
    rng: &mut Rng,
) -> Sample {
    let k = conditions;
    let s = rng.uniform(scene.scale.0, scene.scale.1);
    let c = scene.context;
    let crop = image::imageops::crop_imm(
        photo,
        c.x1 as u32,
        c.y1 as u32,
        c.width() as u32,
        c.height() as u32,
    )
    .to_image();
    let (fw, fh) = (
        (c.width() * s).round() as u32,
        (c.height() * s).round() as u32,
    );
    let mut frame = image::imageops::resize(&crop, fw, fh, image::imageops::Triangle);
    let to_frame = |x: f32, y: f32| [(x - c.x1) * s, (y - c.y1) * s];
    let v = scene.vehicle;
    let [vx1, vy1] = to_frame(v.x1, v.y1);
    let [vx2, vy2] = to_frame(v.x2, v.y2);
    let vehicle = BBox::new(vx1, vy1, vx2, vy2);

    // Pose.
    let aspect = match style {
        Style::Blue => 140.0 / 440.0,
        Style::Green => 140.0 / 480.0,
    };
    let width = scene.plate_width * s * rng.uniform(0.85, 1.15);
    let height = width * aspect;
    let [cx, cy] = to_frame(scene.plate_centre[0], scene.plate_centre[1]);
    let (cx, cy) = (
        cx + rng.uniform(-0.04, 0.04) * vehicle.width(),
        cy + rng.uniform(-0.03, 0.03) * vehicle.height(),
    );
    let roll_deg = rng.uniform(-k.roll, k.roll);
    let yaw = rng.uniform(-k.yaw, k.yaw);
    let pitch = rng.uniform(-k.pitch, k.pitch);
    let (hw, hh) = (width / 2.0 * (1.0 - yaw.abs() / 2.0), height / 2.0);
    let flat = [
        [-hw * (1.0 - pitch), -hh * (1.0 - yaw)],
        [hw * (1.0 - pitch), -hh * (1.0 + yaw)],
        [hw * (1.0 + pitch), hh * (1.0 + yaw)],
        [-hw * (1.0 + pitch), hh * (1.0 - yaw)],
    ];
    let (sin, cos) = roll_deg.to_radians().sin_cos();
    let corners = flat.map(|[x, y]| [cx + x * cos - y * sin, cy + x * sin + y * cos]);

    // Lighting, then the plate into the frame.
    let mut plate = draw_plate(font, text, style);
    let gain = rng.uniform(k.gain.0, k.gain.1);
    let tint = [rng.uniform(0.95, 1.05), 1.0, rng.uniform(0.95, 1.05)];
    for p in plate.pixels_mut() {
        for c in 0..3 {
            p[c] = (p[c] as f32 * gain * tint[c]).round().clamp(0.0, 255.0) as u8;
        }
    }
    paste(&mut frame, &plate, &corners);

    // The camera: blur, sensor noise, compression.
    let blur = rng.uniform(k.blur.0, k.blur.1);
    if blur > 0.3 {
        frame = image::imageops::blur(&frame, blur);
    }
    let noise = rng.uniform(k.noise.0, k.noise.1);
    for p in frame.pixels_mut() {
        for c in 0..3 {
            p[c] = (p[c] as f32 + noise * rng.normal())
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    let jpeg = rng.uniform(k.jpeg.0, k.jpeg.1) as u8;
    let jpeg = jpeg.min(100);
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, jpeg)
        .encode_image(&frame)
        .expect("JPEG encodes");
    let frame = image::load_from_memory(&bytes)
        .expect("JPEG decodes")
        .to_rgb8();

    let d = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).hypot(a[1] - b[1]);
    let plate_px = (
        (d(corners[0], corners[1]) + d(corners[3], corners[2])) / 2.0,
        (d(corners[0], corners[3]) + d(corners[1], corners[2])) / 2.0,
    );
    Sample {
        frame,
        vehicle,
        text: text.to_string(),
        style,
        scene: scene.name,
        corners,
        plate_px,
        roll_deg,
        yaw,
        pitch,
        blur,
        noise,
        jpeg,
    }
}

/// Warp the flat plate onto `corners` of `frame` and blend it by its alpha.
/// The plate is first shrunk near its final size with a filter, so the
/// warp's bilinear sampling does not alias its strokes.
fn paste(frame: &mut RgbImage, plate: &RgbaImage, corners: &[[f32; 2]; 4]) {
    let d = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).hypot(a[1] - b[1]);
    let tw = d(corners[0], corners[1])
        .max(d(corners[3], corners[2]))
        .ceil() as u32;
    let th = d(corners[0], corners[3])
        .max(d(corners[1], corners[2]))
        .ceil() as u32;
    let small = image::imageops::resize(plate, tw.max(2), th.max(2), image::imageops::Triangle);
    let (pw, ph) = (small.width() as f32, small.height() as f32);
    let to_frame = Projection::from_control_points(
        [(0.0, 0.0), (pw, 0.0), (pw, ph), (0.0, ph)],
        corners.map(|[x, y]| (x, y)),
    )
    .expect("a convex quadrilateral");
    let to_plate = to_frame.invert();
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for [x, y] in corners {
        (x0, y0, x1, y1) = (x0.min(*x), y0.min(*y), x1.max(*x), y1.max(*y));
    }
    let (bx, by) = (x0.floor().max(0.0) as u32, y0.floor().max(0.0) as u32);
    let bw = (x1.ceil() as u32 + 1).min(frame.width()).saturating_sub(bx);
    let bh = (y1.ceil() as u32 + 1)
        .min(frame.height())
        .saturating_sub(by);
    let mut canvas = RgbaImage::new(bw, bh);
    warp_into_with(
        &small,
        move |x, y| {
            let (u, v) = to_plate * (x + bx as f32 + 0.5, y + by as f32 + 0.5);
            (u - 0.5, v - 0.5)
        },
        Interpolation::Bilinear,
        Border::Constant(Rgba([0, 0, 0, 0])),
        &mut canvas,
    );
    for (x, y, p) in canvas.enumerate_pixels() {
        let a = p[3] as f32 / 255.0;
        if a > 0.0 {
            let q = frame.get_pixel_mut(bx + x, by + y);
            *q = Rgb(std::array::from_fn(|k| {
                (q[k] as f32 * (1.0 - a) + p[k] as f32 * a).round() as u8
            }));
        }
    }
}
