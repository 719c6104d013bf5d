//! COCO labels and the two kinds Wayside counts.
//!
//! API.md: pedestrian = COCO `person` (riders are removed later by the rider
//! rule, which needs the other boxes of the frame); vehicle = car, bus, truck,
//! motorcycle, bicycle. The map is configurable: [`ClassMap`].

use serde::{Deserialize, Serialize};

/// The 80 COCO class names in the usual contiguous order (index = class id).
pub const COCO: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// What a detection counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Pedestrian,
    Vehicle,
}

/// Which COCO classes are pedestrians, which vehicles, and which two-wheelers
/// carry riders. Everything else is dropped after decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassMap {
    pub pedestrian: Vec<String>,
    pub vehicle: Vec<String>,
    pub two_wheeler: Vec<String>,
}

impl Default for ClassMap {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect();
        Self {
            pedestrian: s(&["person"]),
            vehicle: s(&["car", "bus", "truck", "motorcycle", "bicycle"]),
            two_wheeler: s(&["motorcycle", "bicycle"]),
        }
    }
}

/// Error for a class name that is not one of the 80 COCO names.
#[derive(Debug, thiserror::Error)]
#[error("unknown COCO class {0:?}")]
pub struct UnknownClass(pub String);

/// [`ClassMap`] resolved to class ids, for the hot path.
#[derive(Debug, Clone)]
pub struct ResolvedClassMap {
    kinds: [Option<Kind>; 80],
    two_wheeler: [bool; 80],
}

impl ClassMap {
    pub fn resolve(&self) -> Result<ResolvedClassMap, UnknownClass> {
        let id = |name: &String| {
            COCO.iter()
                .position(|c| c == name)
                .ok_or_else(|| UnknownClass(name.clone()))
        };
        let mut kinds = [None; 80];
        let mut two_wheeler = [false; 80];
        for name in &self.pedestrian {
            kinds[id(name)?] = Some(Kind::Pedestrian);
        }
        for name in &self.vehicle {
            kinds[id(name)?] = Some(Kind::Vehicle);
        }
        for name in &self.two_wheeler {
            two_wheeler[id(name)?] = true;
        }
        Ok(ResolvedClassMap { kinds, two_wheeler })
    }
}

impl ResolvedClassMap {
    pub fn kind(&self, class_id: usize) -> Option<Kind> {
        self.kinds.get(class_id).copied().flatten()
    }

    pub fn is_two_wheeler(&self, class_id: usize) -> bool {
        self.two_wheeler.get(class_id).copied().unwrap_or(false)
    }
}

impl Default for ResolvedClassMap {
    fn default() -> Self {
        ClassMap::default()
            .resolve()
            .expect("the default class map names only COCO classes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_map() {
        let m = ResolvedClassMap::default();
        assert_eq!(m.kind(0), Some(Kind::Pedestrian));
        assert_eq!(m.kind(2), Some(Kind::Vehicle));
        assert_eq!(m.kind(7), Some(Kind::Vehicle));
        assert_eq!(m.kind(16), None);
        assert!(m.is_two_wheeler(1) && m.is_two_wheeler(3) && !m.is_two_wheeler(2));
        assert_eq!(m.kind(500), None);
    }

    #[test]
    fn unknown_class_is_named() {
        let map = ClassMap {
            vehicle: vec!["tram".into()],
            ..Default::default()
        };
        assert_eq!(
            map.resolve().unwrap_err().to_string(),
            "unknown COCO class \"tram\""
        );
    }
}
