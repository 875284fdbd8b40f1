//! One decoding pass that understands both record layouts.
//!
//! MaxMind layout (GeoLite2/GeoIP2 City, Country, ASN):
//! `country.iso_code`, `country.names.en`, `registered_country.*`, `city.names.en`,
//! `location.latitude`, `location.longitude`, `autonomous_system_number`,
//! `autonomous_system_organization`.
//!
//! Flat layout (the `@ip-location-db/*-mmdb` packages): `country_code`, `city` (a plain
//! string), `state1`, `state2`, `postcode`, `latitude`, `longitude` (32-bit floats),
//! `timezone`, and for ASN files the same two `autonomous_system_*` keys.
//!
//! The struct below takes every key of both layouts as optional, and the two keys whose
//! type differs between layouts (`city`, `country`) go through [`Place`], which accepts
//! either a string or a map. Strings borrow from the database buffer, so decoding
//! allocates nothing; only the final [`GeoInfo`] owns strings. Unknown keys are skipped.

use std::fmt;

use apiary_model::GeoInfo;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// The union of the keys we use from both layouts.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Record<'a> {
    #[serde(borrow)]
    country: Option<Place<'a>>,
    #[serde(borrow)]
    registered_country: Option<Place<'a>>,
    #[serde(borrow)]
    city: Option<Place<'a>>,
    location: Option<Location>,
    #[serde(borrow)]
    country_code: Option<&'a str>,
    latitude: Option<Coord>,
    longitude: Option<Coord>,
    autonomous_system_number: Option<AsNumber>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
}

impl Record<'_> {
    /// Whether the record has the nested MaxMind layout (as opposed to the flat one).
    #[cfg(test)]
    pub(crate) fn is_nested(&self) -> bool {
        self.location.is_some() || matches!(self.country, Some(Place { code: Some(_), .. }))
    }

    /// Copy the location fields (country, city, coordinates) into `info`, leaving fields
    /// this record lacks untouched.
    pub(crate) fn fill_location(&self, info: &mut GeoInfo) {
        let country = self.country.as_ref().or(self.registered_country.as_ref());
        let code = self
            .country_code
            .or_else(|| country.and_then(|c| c.code))
            .and_then(non_empty);
        if let Some(code) = code {
            info.country_code = Some(code.to_ascii_uppercase());
        }
        if let Some(name) = country.and_then(|c| c.name).and_then(non_empty) {
            info.country = Some(name.to_owned());
        }
        if let Some(city) = self.city.as_ref().and_then(|c| c.name).and_then(non_empty) {
            info.city = Some(city.to_owned());
        }
        let (lat, lon) = match &self.location {
            Some(loc) => (loc.latitude, loc.longitude),
            None => (self.latitude, self.longitude),
        };
        // A (0, 0) pair is how some files say "unknown"; a real point there is open sea.
        if let (Some(Coord(lat)), Some(Coord(lon))) = (lat, lon) {
            if lat.is_finite() && lon.is_finite() && (lat, lon) != (0.0, 0.0) {
                info.latitude = Some(lat);
                info.longitude = Some(lon);
            }
        }
    }

    /// Copy the autonomous-system fields into `info`, leaving fields this record lacks
    /// untouched.
    pub(crate) fn fill_asn(&self, info: &mut GeoInfo) {
        if let Some(AsNumber(n)) = self.autonomous_system_number {
            if n != 0 {
                info.asn = Some(n);
            }
        }
        if let Some(org) = self.autonomous_system_organization.and_then(non_empty) {
            info.as_org = Some(org.to_owned());
        }
    }
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// `location` map of the MaxMind layout.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Location {
    latitude: Option<Coord>,
    longitude: Option<Coord>,
}

/// A country or city: a plain name (flat layout) or a map with `iso_code` and
/// `names.en` (MaxMind layout).
#[derive(Debug, Default)]
struct Place<'a> {
    code: Option<&'a str>,
    name: Option<&'a str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Place<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PlaceVisitor;
        impl<'de> Visitor<'de> for PlaceVisitor {
            type Value = Place<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a place name or a map with iso_code/names")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Place {
                    name: Some(v),
                    ..Place::default()
                })
            }
            // An owned string cannot be borrowed; treat it as absent rather than fail.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Place::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut place = Place::default();
                while let Some(key) = map.next_key::<&'de str>()? {
                    match key {
                        "iso_code" => place.code = map.next_value::<Option<&'de str>>()?,
                        "names" => place.name = map.next_value::<Names<'de>>()?.en,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(place)
            }
        }
        d.deserialize_any(PlaceVisitor)
    }
}

/// `names` map; only English is kept.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

/// A latitude or longitude: a double (MaxMind) or a 32-bit float (flat layout).
///
/// Values are rounded to 4 decimal places (about 11 m), the precision the sources have;
/// this also hides the noise of widening an `f32` (`37.751` rather than `37.750999450683594`).
#[derive(Debug, Clone, Copy)]
struct Coord(f64);

impl<'de> Deserialize<'de> for Coord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CoordVisitor;
        impl Visitor<'_> for CoordVisitor {
            type Value = Coord;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Coord, E> {
                Ok(Coord((v * 1e4).round() / 1e4))
            }
            fn visit_f32<E: de::Error>(self, v: f32) -> Result<Coord, E> {
                self.visit_f64(f64::from(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Coord, E> {
                Ok(Coord(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Coord, E> {
                Ok(Coord(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Coord, E> {
                Ok(Coord(v.trim().parse().unwrap_or(f64::NAN)))
            }
        }
        d.deserialize_any(CoordVisitor)
    }
}

/// An AS number stored as any unsigned integer type, or as a string (`"13335"`, `"AS13335"`).
#[derive(Debug, Clone, Copy)]
struct AsNumber(u32);

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AsnVisitor;
        impl Visitor<'_> for AsnVisitor {
            type Value = AsNumber;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an AS number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AsNumber, E> {
                Ok(AsNumber(u32::try_from(v).unwrap_or(0)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AsNumber, E> {
                Ok(AsNumber(u32::try_from(v).unwrap_or(0)))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<AsNumber, E> {
                Ok(AsNumber(u32::try_from(v).unwrap_or(0)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AsNumber, E> {
                let v = v.trim();
                let digits = v
                    .strip_prefix("AS")
                    .or_else(|| v.strip_prefix("as"))
                    .unwrap_or(v);
                Ok(AsNumber(digits.parse().unwrap_or(0)))
            }
        }
        d.deserialize_any(AsnVisitor)
    }
}
