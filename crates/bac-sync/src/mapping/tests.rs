//! The mapping's tests: parsing, every transform, and properties (proptest).
use proptest::prelude::*;
use serde_json::json;

use super::*;

fn rule(v: Value) -> Mapping {
    Mapping::parse(&json!({ "fields": [v] })).unwrap()
}

fn one(rule_json: Value, record: Value) -> Result<Value, MappingError> {
    let m = rule(rule_json);
    let target = m.fields[0].target.clone();
    m.apply(&record).map(|out| {
        target
            .split('.')
            .try_fold(&out, |cur, seg| cur.get(seg))
            .cloned()
            .unwrap()
    })
}

fn err(rule_json: Value, record: Value) -> String {
    one(rule_json, record).unwrap_err().to_string()
}

fn parse_errors(v: Value) -> Vec<String> {
    Mapping::parse(&v).unwrap_err()
}

fn odoo_lead() -> Value {
    json!({
        "id": 7, "name": " Deal ", "email_from": "A@B.COM", "partner_id": [3, "Acme"],
        "expected_revenue": 1250.5, "priority": "2", "write_date": "2026-11-22 06:51:34",
        "phone": false, "first": "Ada", "last": "Lovelace", "tags": " vip , new",
        "lines": [{"qty": 2}, {"qty": 5}]
    })
}

#[test]
fn the_documented_example_maps_an_odoo_lead() {
    let m = Mapping::parse(&json!({"fields": [
      {"target": "email", "source": "email_from", "transforms": [{"op": "trim"}, {"op": "lower"}]},
      {"target": "company", "source": "partner_id.1"},
      {"target": "kind", "constant": "lead"},
      {"target": "full_name", "concat": ["first", "last"], "separator": " "},
      {"target": "revenue_cents", "source": "expected_revenue", "transforms": [{"op": "scale", "factor": 100, "decimals": 0}]},
      {"target": "priority", "source": "priority", "transforms": [{"op": "lookup", "table": {"0": "low", "1": "medium", "2": "high", "3": "very_high"}, "default": "low"}]},
      {"target": "updated_at", "source": "write_date", "transforms": [{"op": "datetime", "from": "%Y-%m-%d %H:%M:%S", "from_tz": "UTC", "to_tz": "Europe/Paris", "to": "rfc3339"}]},
      {"target": "first_tag", "source": "tags", "transforms": [{"op": "split", "separator": ",", "index": 0}, {"op": "trim"}]},
      {"target": "phone", "source": "phone", "transforms": [{"op": "empty_to_null"}], "default": "n/a"},
      {"target": "name", "source": "name", "required": true}
    ]}))
    .unwrap();
    assert_eq!(
        m.apply(&odoo_lead()).unwrap(),
        json!({
            "email": "a@b.com", "company": "Acme", "kind": "lead", "full_name": "Ada Lovelace",
            "revenue_cents": 125050, "priority": "high",
            "updated_at": "2026-11-22T07:51:34+01:00", "first_tag": "vip", "phone": "n/a",
            "name": " Deal "
        })
    );
}

#[test]
fn rename_follows_nested_paths_and_array_indexes() {
    let r = odoo_lead();
    assert_eq!(
        one(json!({"target": "c", "source": "partner_id.1"}), r.clone()).unwrap(),
        json!("Acme")
    );
    assert_eq!(
        one(json!({"target": "c", "source": "partner_id.0"}), r.clone()).unwrap(),
        json!(3)
    );
    assert_eq!(
        one(json!({"target": "q", "source": "lines.1.qty"}), r.clone()).unwrap(),
        json!(5)
    );
    assert_eq!(
        one(json!({"target": "l", "source": "lines"}), r.clone()).unwrap(),
        json!([{"qty": 2}, {"qty": 5}])
    );
    let obj = json!({"m": {"1": "key one"}});
    assert_eq!(
        one(json!({"target": "x", "source": "m.1"}), obj).unwrap(),
        json!("key one")
    );
}

#[test]
fn a_missing_path_is_null_unless_required() {
    let r = odoo_lead();
    for path in [
        "nope",
        "partner_id.9",
        "name.x",
        "lines.x",
        "lines.-1",
        "lines.+1",
        "phone.1",
    ] {
        assert_eq!(
            one(json!({"target": "t", "source": path}), r.clone()).unwrap(),
            Value::Null,
            "{path}"
        );
    }
    assert_eq!(
        one(
            json!({"target": "t", "source": "nope", "required": true}),
            r.clone()
        )
        .unwrap_err(),
        MappingError {
            field: "t".into(),
            message: "required but missing".into()
        }
    );
    assert_eq!(
        err(
            json!({"target": "t", "source": "nope", "required": true}),
            r
        ),
        "t: required but missing"
    );
}

#[test]
fn constant_is_any_json_value_including_null() {
    let r = odoo_lead();
    assert_eq!(
        one(
            json!({"target": "k", "constant": {"a": [1, true]}}),
            r.clone()
        )
        .unwrap(),
        json!({"a": [1, true]})
    );
    let m = rule(json!({"target": "k", "constant": null}));
    assert_eq!(m.fields[0].constant, Some(Value::Null));
    assert_eq!(m.apply(&r).unwrap(), json!({"k": null}));
    assert_eq!(
        one(
            json!({"target": "k", "constant": " X ", "transforms": [{"op": "trim"}]}),
            r
        )
        .unwrap(),
        json!("X")
    );
}

#[test]
fn default_fills_null_after_transforms_and_required_checks_after_default() {
    let r = json!({"a": "", "b": "x"});
    let tf = json!([{"op": "empty_to_null"}]);
    assert_eq!(
        one(
            json!({"target": "t", "source": "a", "transforms": tf, "default": 0}),
            r.clone()
        )
        .unwrap(),
        json!(0)
    );
    assert_eq!(
        one(
            json!({"target": "t", "source": "b", "transforms": tf, "default": 0}),
            r.clone()
        )
        .unwrap(),
        json!("x")
    );
    assert_eq!(one(json!({"target": "t", "source": "a", "transforms": tf, "default": "d", "required": true}), r.clone()).unwrap(), json!("d"));
    assert_eq!(
        err(
            json!({"target": "t", "source": "a", "transforms": tf, "required": true}),
            r.clone()
        ),
        "t: required but missing"
    );
    // An explicit null default is still no value.
    assert_eq!(
        err(
            json!({"target": "t", "source": "zz", "default": null, "required": true}),
            r
        ),
        "t: required but missing"
    );
}

#[test]
fn trim_lower_upper_take_strings_and_pass_null() {
    let r = json!({"s": "  MiXeD Çase ", "n": 5, "z": null, "b": false});
    assert_eq!(
        one(
            json!({"target": "t", "source": "s", "transforms": [{"op": "trim"}]}),
            r.clone()
        )
        .unwrap(),
        json!("MiXeD Çase")
    );
    assert_eq!(
        one(
            json!({"target": "t", "source": "s", "transforms": [{"op": "lower"}]}),
            r.clone()
        )
        .unwrap(),
        json!("  mixed çase ")
    );
    assert_eq!(
        one(
            json!({"target": "t", "source": "s", "transforms": [{"op": "upper"}]}),
            r.clone()
        )
        .unwrap(),
        json!("  MIXED ÇASE ")
    );
    for op in ["trim", "lower", "upper"] {
        assert_eq!(
            one(
                json!({"target": "t", "source": "z", "transforms": [{"op": op}]}),
                r.clone()
            )
            .unwrap(),
            Value::Null
        );
        assert_eq!(
            one(
                json!({"target": "t", "source": "missing", "transforms": [{"op": op}]}),
                r.clone()
            )
            .unwrap(),
            Value::Null
        );
    }
    assert_eq!(
        err(
            json!({"target": "email", "source": "n", "transforms": [{"op": "trim"}, {"op": "lower"}]}),
            r.clone()
        ),
        "email: transforms[0] (trim): expected a string, got a number"
    );
    assert_eq!(
        err(
            json!({"target": "t", "source": "b", "transforms": [{"op": "upper"}]}),
            r
        ),
        "t: transforms[0] (upper): expected a string, got a boolean"
    );
}

#[test]
fn empty_to_null_clears_odoo_false_empty_string_and_empty_array() {
    let r =
        json!({"f": false, "e": "", "a": [], "t": true, "s": " ", "z": 0, "o": {}, "full": [1]});
    let get = |k: &str| {
        one(
            json!({"target": "x", "source": k, "transforms": [{"op": "empty_to_null"}]}),
            r.clone(),
        )
        .unwrap()
    };
    assert_eq!(get("f"), Value::Null);
    assert_eq!(get("e"), Value::Null);
    assert_eq!(get("a"), Value::Null);
    assert_eq!(get("t"), json!(true));
    assert_eq!(get("s"), json!(" "));
    assert_eq!(get("z"), json!(0));
    assert_eq!(get("o"), json!({}));
    assert_eq!(get("full"), json!([1]));
}

#[test]
fn scale_multiplies_numbers_and_numeric_strings() {
    let sc = |v: Value, factor: f64, decimals: Option<u32>| {
        let mut op = json!({"op": "scale", "factor": factor});
        if let Some(d) = decimals {
            op["decimals"] = json!(d);
        }
        one(
            json!({"target": "t", "source": "v", "transforms": [op]}),
            json!({"v": v}),
        )
    };
    assert_eq!(sc(json!(1250.5), 100.0, Some(0)).unwrap(), json!(125050));
    assert!(sc(json!(1250.5), 100.0, Some(0)).unwrap().is_i64());
    assert_eq!(sc(json!("12.345"), 1.0, Some(2)).unwrap(), json!(12.35));
    assert_eq!(sc(json!(" 3 "), 2.0, None).unwrap(), json!(6.0));
    assert_eq!(sc(json!(3), 0.5, None).unwrap(), json!(1.5));
    // Half away from zero, on the decimal value (1.005 is 1.00499999… in binary).
    assert_eq!(sc(json!(2.5), 1.0, Some(0)).unwrap(), json!(3));
    assert_eq!(sc(json!(-2.5), 1.0, Some(0)).unwrap(), json!(-3));
    assert_eq!(sc(json!(1.005), 1.0, Some(2)).unwrap(), json!(1.01));
    assert_eq!(sc(json!(0.285), 100.0, Some(0)).unwrap(), json!(29));
    assert_eq!(sc(json!(-0.4), 1.0, Some(0)).unwrap(), json!(0));
    assert_eq!(sc(json!("1e3"), 1.0, Some(0)).unwrap(), json!(1000));
    // Too big for i64: stays a float.
    assert_eq!(sc(json!(1e19), 1.0, Some(0)).unwrap(), json!(1e19));
    assert_eq!(sc(Value::Null, 2.0, Some(0)).unwrap(), Value::Null);
    assert_eq!(
        sc(json!("abc"), 2.0, None).unwrap_err().to_string(),
        "t: transforms[0] (scale): not a number: \"abc\""
    );
    assert_eq!(
        sc(json!(""), 2.0, None).unwrap_err().to_string(),
        "t: transforms[0] (scale): not a number: \"\""
    );
    assert_eq!(
        sc(json!(false), 2.0, None).unwrap_err().to_string(),
        "t: transforms[0] (scale): expected a number, got a boolean"
    );
    assert_eq!(
        sc(json!(1e300), 1e300, None).unwrap_err().to_string(),
        "t: transforms[0] (scale): 1e+300 * 1e+300 is not a finite number"
    );
    assert_eq!(sc(json!(1e300), 1.0, Some(15)).unwrap(), json!(1e300));
    assert!(sc(json!("NaN"), 1.0, None)
        .unwrap_err()
        .message
        .contains("not a finite number"));
    assert!(sc(json!("inf"), 1.0, Some(0))
        .unwrap_err()
        .message
        .contains("not a finite number"));
}

#[test]
fn datetime_converts_formats_and_time_zones() {
    let dt = |v: Value, op: Value| {
        one(
            json!({"target": "t", "source": "v", "transforms": [op]}),
            json!({"v": v}),
        )
    };
    let op = |from: &str, from_tz: &str, to: &str, to_tz: &str| json!({"op": "datetime", "from": from, "from_tz": from_tz, "to": to, "to_tz": to_tz});
    let odoo = "%Y-%m-%d %H:%M:%S";
    assert_eq!(
        dt(
            json!("2026-11-22 06:51:34"),
            op(odoo, "UTC", "rfc3339", "Europe/Paris")
        )
        .unwrap(),
        json!("2026-11-22T07:51:34+01:00")
    );
    assert_eq!(
        dt(
            json!("2026-07-01 12:00:00"),
            op(odoo, "Europe/Paris", "rfc3339", "UTC")
        )
        .unwrap(),
        json!("2026-07-01T10:00:00Z")
    );
    assert_eq!(
        dt(
            json!("2026-11-22 06:51:34"),
            json!({"op": "datetime", "from": odoo, "to": "unix"})
        )
        .unwrap(),
        json!(1_795_330_294)
    );
    assert_eq!(
        dt(
            json!(1_795_330_294),
            json!({"op": "datetime", "from": "unix", "to": "rfc3339"})
        )
        .unwrap(),
        json!("2026-11-22T06:51:34Z")
    );
    assert_eq!(
        dt(
            json!("1795330294.5"),
            json!({"op": "datetime", "from": "unix", "to": "rfc3339"})
        )
        .unwrap(),
        json!("2026-11-22T06:51:34.500Z")
    );
    assert_eq!(
        dt(
            json!("2026-11-22T23:30:00-05:00"),
            op("rfc3339", "Asia/Tokyo", "date", "UTC")
        )
        .unwrap(),
        json!("2026-11-23")
    );
    assert_eq!(
        dt(
            json!("2026-11-22"),
            op("date", "Asia/Kolkata", "rfc3339", "UTC")
        )
        .unwrap(),
        json!("2026-11-21T18:30:00Z")
    );
    assert_eq!(
        dt(
            json!("22/11/2026"),
            op("%d/%m/%Y", "UTC", "%d.%m.%Y %H:%M", "Asia/Kolkata")
        )
        .unwrap(),
        json!("22.11.2026 05:30")
    );
    // An offset in the input wins over from_tz.
    assert_eq!(
        dt(
            json!("2026-11-22 06:51:34 +0200"),
            op("%Y-%m-%d %H:%M:%S %z", "Asia/Tokyo", "rfc3339", "UTC")
        )
        .unwrap(),
        json!("2026-11-22T04:51:34Z")
    );
    // DST: the repeated hour takes its first occurrence, the skipped hour is refused.
    assert_eq!(
        dt(
            json!("2026-10-25 02:30:00"),
            op(odoo, "Europe/Paris", "rfc3339", "UTC")
        )
        .unwrap(),
        json!("2026-10-25T00:30:00Z")
    );
    assert_eq!(
        dt(json!("2026-03-29 02:30:00"), op(odoo, "Europe/Paris", "rfc3339", "UTC")).unwrap_err().to_string(),
        "t: transforms[0] (datetime): 2026-03-29 02:30:00 does not exist in Europe/Paris (a daylight-saving gap)"
    );
    assert_eq!(
        dt(Value::Null, op(odoo, "UTC", "rfc3339", "UTC")).unwrap(),
        Value::Null
    );
    assert_eq!(
        dt(json!(false), op(odoo, "UTC", "rfc3339", "UTC"))
            .unwrap_err()
            .to_string(),
        "t: transforms[0] (datetime): expected a date/time string, got a boolean"
    );
    assert!(dt(json!("22/11/2026"), op(odoo, "UTC", "rfc3339", "UTC"))
        .unwrap_err()
        .message
        .contains("does not match \"%Y-%m-%d %H:%M:%S\""));
    assert!(
        dt(json!("yesterday"), op("rfc3339", "UTC", "rfc3339", "UTC"))
            .unwrap_err()
            .message
            .contains("is not RFC 3339")
    );
    assert!(dt(json!("soon"), op("unix", "UTC", "rfc3339", "UTC"))
        .unwrap_err()
        .message
        .contains("not unix seconds"));
    assert!(dt(json!(1e20), op("unix", "UTC", "rfc3339", "UTC"))
        .unwrap_err()
        .message
        .contains("out of range"));
}

#[test]
fn datetime_problems_are_caught_by_validate_not_apply() {
    let errs = parse_errors(json!({"fields": [
        {"target": "a", "source": "a", "transforms": [{"op": "datetime", "from": "rfc3339", "from_tz": "Mars/Olympus", "to": "rfc3339", "to_tz": "Europe/Pariss"}]},
        {"target": "b", "source": "b", "transforms": [{"op": "datetime", "from": "%Y-%Q", "to": "%Y %"}]},
        {"target": "c", "source": "c", "transforms": [{"op": "datetime", "from": "%H:%M", "to": "hello"}]},
        {"target": "d", "source": "d", "transforms": [{"op": "datetime", "from": "", "to": ""}]}
    ]}));
    assert_eq!(errs, vec![
        "fields[0].transforms[0].from_tz: unknown time zone \"Mars/Olympus\"",
        "fields[0].transforms[0].to_tz: unknown time zone \"Europe/Pariss\"",
        "fields[1].transforms[0].from: invalid strftime pattern \"%Y-%Q\"",
        "fields[1].transforms[0].to: invalid strftime pattern \"%Y %\"",
        "fields[2].transforms[0].from: cannot read a date with it (\"04:05\" does not match \"%H:%M\": input is not enough for unique date and time)",
        "fields[2].transforms[0].to: \"hello\" has no date or time fields",
        "fields[3].transforms[0].from: \"\" has no date or time fields",
        "fields[3].transforms[0].to: \"\" has no date or time fields",
    ]);
    // Unvalidated (built in code) it still fails cleanly at apply time, never panics.
    let m = Mapping {
        fields: vec![FieldRule {
            target: "t".into(),
            source: Some("v".into()),
            transforms: vec![Transform::Datetime {
                from: "unix".into(),
                from_tz: None,
                to: "%Q".into(),
                to_tz: Some("Nowhere".into()),
            }],
            ..FieldRule::default()
        }],
    };
    assert_eq!(
        m.apply(&json!({"v": 0})).unwrap_err().to_string(),
        "t: transforms[0] (datetime): unknown time zone \"Nowhere\""
    );
    let mut m2 = m.clone();
    m2.fields[0].transforms[0] = Transform::Datetime {
        from: "unix".into(),
        from_tz: None,
        to: "%Q".into(),
        to_tz: None,
    };
    assert_eq!(
        m2.apply(&json!({"v": 0})).unwrap_err().to_string(),
        "t: transforms[0] (datetime): invalid strftime pattern \"%Q\""
    );
}

#[test]
fn lookup_maps_keys_with_json_text_and_default() {
    let table = json!({"0": "low", "2": "high", "true": "yes", "x": {"nested": 1}});
    let lk = |v: Value, default: Option<Value>| {
        let mut op = json!({"op": "lookup", "table": table});
        if let Some(d) = default {
            op["default"] = d;
        }
        one(
            json!({"target": "p", "source": "v", "transforms": [op]}),
            json!({"v": v}),
        )
    };
    assert_eq!(lk(json!("2"), None).unwrap(), json!("high"));
    assert_eq!(lk(json!(2), None).unwrap(), json!("high"));
    assert_eq!(lk(json!(2.0), None).unwrap(), json!("high"));
    assert_eq!(lk(json!(true), None).unwrap(), json!("yes"));
    assert_eq!(lk(json!("x"), None).unwrap(), json!({"nested": 1}));
    assert_eq!(lk(json!("9"), Some(json!("low"))).unwrap(), json!("low"));
    assert_eq!(lk(json!("9"), Some(Value::Null)).unwrap(), Value::Null);
    assert_eq!(lk(Value::Null, None).unwrap(), Value::Null);
    assert_eq!(
        lk(json!("9"), None).unwrap_err().to_string(),
        "p: transforms[0] (lookup): no entry for \"9\" in the table and no default"
    );
    assert_eq!(
        lk(json!(2.5), None).unwrap_err().to_string(),
        "p: transforms[0] (lookup): no entry for 2.5 in the table and no default"
    );
    assert_eq!(
        lk(json!([1]), Some(json!("d"))).unwrap_err().to_string(),
        "p: transforms[0] (lookup): expected a string, number or boolean, got an array"
    );
}

#[test]
fn concat_joins_skipping_nulls_and_renders_non_strings_as_json() {
    let r = json!({"first": "Ada", "last": "Lovelace", "n": 3, "f": 1.5, "b": true, "z": null, "o": {"k": "v"}});
    let cc = |paths: Value, sep: Option<&str>| {
        let mut rule = json!({"target": "t", "concat": paths});
        if let Some(s) = sep {
            rule["separator"] = json!(s);
        }
        one(rule, r.clone()).unwrap()
    };
    assert_eq!(
        cc(json!(["first", "last"]), Some(" ")),
        json!("Ada Lovelace")
    );
    assert_eq!(cc(json!(["first", "last"]), None), json!("AdaLovelace"));
    assert_eq!(
        cc(json!(["first", "z", "missing", "last"]), Some("-")),
        json!("Ada-Lovelace")
    );
    assert_eq!(
        cc(json!(["n", "f", "b", "o"]), Some("|")),
        json!("3|1.5|true|{\"k\":\"v\"}")
    );
    assert_eq!(cc(json!(["z", "missing"]), Some(" ")), Value::Null);
    assert_eq!(
        one(
            json!({"target": "t", "concat": ["z"], "default": "none"}),
            r
        )
        .unwrap(),
        json!("none")
    );
}

#[test]
fn split_gives_parts_or_one_part() {
    let r = json!({"tags": "vip, new,,old", "n": 1});
    let sp = |index: Option<usize>| {
        let mut op = json!({"op": "split", "separator": ","});
        if let Some(i) = index {
            op["index"] = json!(i);
        }
        one(
            json!({"target": "t", "source": "tags", "transforms": [op]}),
            r.clone(),
        )
    };
    assert_eq!(sp(None).unwrap(), json!(["vip", " new", "", "old"]));
    assert_eq!(sp(Some(1)).unwrap(), json!(" new"));
    assert_eq!(sp(Some(4)).unwrap(), Value::Null);
    assert_eq!(
        err(
            json!({"target": "t", "source": "n", "transforms": [{"op": "split", "separator": ","}]}),
            r.clone()
        ),
        "t: transforms[0] (split): expected a string, got a number"
    );
    // Index given as 1.0 (rules saved through a protobuf Struct) is still an index.
    assert_eq!(rule(json!({"target": "t", "source": "tags", "transforms": [{"op": "split", "separator": ",", "index": 1.0}]})).fields[0].transforms[0],
        Transform::Split { separator: ",".into(), index: Some(1) });
}

#[test]
fn dotted_targets_build_nested_objects() {
    let m = Mapping::parse(&json!({"fields": [
        {"target": "address.city", "source": "city"},
        {"target": "address.geo.lat", "source": "lat"},
        {"target": "address.geo.lng", "constant": 2.35},
        {"target": "name", "source": "name"},
        {"target": "lines.0", "source": "missing"}
    ]}))
    .unwrap();
    assert_eq!(
        m.apply(&json!({"city": "Paris", "lat": 48.85, "name": "n"}))
            .unwrap(),
        json!({"address": {"city": "Paris", "geo": {"lat": 48.85, "lng": 2.35}}, "name": "n", "lines": {"0": null}})
    );
}

#[test]
fn unvalidated_overlapping_targets_fail_at_apply_without_panicking() {
    let m = Mapping {
        fields: vec![
            FieldRule {
                target: "a".into(),
                constant: Some(json!(1)),
                ..FieldRule::default()
            },
            FieldRule {
                target: "a.b".into(),
                constant: Some(json!(2)),
                ..FieldRule::default()
            },
        ],
    };
    assert_eq!(
        m.apply(&json!({})).unwrap_err().to_string(),
        "a.b: \"a\" is already a value, not an object"
    );
    let m = Mapping {
        fields: vec![
            FieldRule {
                target: "a.b".into(),
                constant: Some(json!(1)),
                ..FieldRule::default()
            },
            FieldRule {
                target: "a".into(),
                constant: Some(json!(2)),
                ..FieldRule::default()
            },
        ],
    };
    assert_eq!(
        m.apply(&json!({})).unwrap_err().to_string(),
        "a: written twice (duplicate or overlapping target)"
    );
    let m = Mapping {
        fields: vec![FieldRule {
            target: "a".into(),
            ..FieldRule::default()
        }],
    };
    assert_eq!(
        m.apply(&json!({})).unwrap_err().to_string(),
        "a: no source, constant or concat"
    );
}

#[test]
fn a_record_must_be_an_object() {
    let m = Mapping::identity(&["id"]);
    assert_eq!(
        m.apply(&json!([1])).unwrap_err().to_string(),
        "(record): expected an object, got an array"
    );
}

#[test]
fn identity_copies_named_fields() {
    let m = Mapping::identity(&["id", "name", "missing"]);
    assert_eq!(m.validate(), Ok(()));
    assert_eq!(
        m.apply(&odoo_lead()).unwrap(),
        json!({"id": 7, "name": " Deal ", "missing": null})
    );
    assert_eq!(
        serde_json::to_value(&m).unwrap()["fields"][0],
        json!({"target": "id", "source": "id"})
    );
}

#[test]
fn validation_names_the_place_of_every_problem() {
    let errs = parse_errors(json!({"fields": [
        {"target": "", "source": "a"},
        {"target": "b"},
        {"target": "c", "source": "c", "constant": 1},
        {"target": "d", "source": "d", "transforms": [{"op": "lookup", "table": {}}]},
        {"target": "e", "source": "e", "transforms": [{"op": "split", "separator": ""}]},
        {"target": "f", "source": "a..b"},
        {"target": "g", "concat": []},
        {"target": "h", "source": "h", "separator": " "},
        {"target": "i", "concat": ["ok", "bad."]},
        {"target": "j", "source": "j", "transforms": [{"op": "scale", "factor": 2, "decimals": 16}]}
    ]}));
    assert_eq!(
        errs,
        vec![
            "fields[0].target: must not be empty",
            "fields[1]: needs one of source, constant or concat",
            "fields[2]: source, constant and concat are exclusive (got source and constant)",
            "fields[3].transforms[0].table: must not be empty",
            "fields[4].transforms[0].separator: must not be empty",
            "fields[5].source: empty segment in \"a..b\"",
            "fields[6].concat: must list at least one path",
            "fields[7].separator: only applies to concat",
            "fields[8].concat[1]: empty segment in \"bad.\"",
            "fields[9].transforms[0].decimals: at most 15",
        ]
    );
}

#[test]
fn deserialization_errors_name_their_place_and_do_not_hide_the_rest() {
    let errs = parse_errors(json!({"fields": [
        {"target": "a", "source": "a", "transforms": [{"op": "trim"}, {"op": "titlecase"}, {"op": "scale"}]},
        {"target": "b", "sauce": "b"},
        {"target": "c", "source": "c", "transforms": [{"op": "trim", "extra": 1}]},
        {"target": "a", "source": "x"},
        7
    ], "version": 2}));
    assert_eq!(errs.len(), 7, "{errs:#?}");
    assert_eq!(errs[0], "version: unknown field, expected `fields`");
    assert!(
        errs[1].starts_with("fields[0].transforms[1]: unknown variant `titlecase`"),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].starts_with("fields[0].transforms[2]: missing field `factor`"),
        "{}",
        errs[2]
    );
    assert!(
        errs[3].starts_with("fields[1]: unknown field `sauce`"),
        "{}",
        errs[3]
    );
    assert!(
        errs[4].starts_with("fields[2].transforms[0]: unknown field `extra`"),
        "{}",
        errs[4]
    );
    assert!(
        errs[5].starts_with("fields[4]: invalid type: integer `7`"),
        "{}",
        errs[5]
    );
    // Rules that did deserialize are still checked against each other.
    assert_eq!(
        errs[6],
        "fields[3].target: duplicate target \"a\" (fields[0])"
    );

    assert_eq!(
        parse_errors(json!([])),
        vec!["expected an object with \"fields\", got an array"]
    );
    assert_eq!(parse_errors(json!({})), vec!["fields: missing"]);
    assert_eq!(
        parse_errors(json!({"fields": {}})),
        vec!["fields: expected an array, got an object"]
    );
    assert_eq!(
        parse_errors(json!({"fields": []})),
        vec!["fields: must hold at least one rule"]
    );
    assert!(parse_errors(json!({"fields": [{"target": "t", "source": "s", "transforms": [{"op": "split", "separator": ",", "index": -1}]}]}))[0]
        .starts_with("fields[0].transforms[0]: expected a small non-negative whole number, got -1"));
}

#[test]
fn duplicate_and_nested_targets_are_refused() {
    let errs = parse_errors(json!({"fields": [
        {"target": "a.b", "constant": 1},
        {"target": "x", "constant": 1},
        {"target": "a", "constant": 1},
        {"target": "x", "constant": 2},
        {"target": "a.b.c", "constant": 3},
        {"target": "ab", "constant": 3},
        {"target": "a.bc", "constant": 3}
    ]}));
    assert_eq!(
        errs,
        vec![
            "fields[0].target: target inside another target \"a\" (fields[2])",
            "fields[3].target: duplicate target \"x\" (fields[1])",
            "fields[4].target: target inside another target \"a\" (fields[2])",
            "fields[6].target: target inside another target \"a\" (fields[2])",
        ]
    );
    // Neither a sibling nor a name sharing a prefix overlaps.
    assert!(Mapping::parse(&json!({"fields": [
        {"target": "a.b", "constant": 1}, {"target": "a.bc", "constant": 1},
        {"target": "ab", "constant": 1}, {"target": "a.c.d", "constant": 1}
    ]}))
    .is_ok());
}

#[test]
fn limits_are_enforced() {
    let many: Vec<Value> = (0..=MAX_FIELDS)
        .map(|i| json!({"target": format!("f{i}"), "constant": i}))
        .collect();
    assert_eq!(
        parse_errors(json!({"fields": many})),
        vec!["fields: at most 500 rules (got 501)"]
    );
    let ok: Vec<Value> = (0..MAX_FIELDS)
        .map(|i| json!({"target": format!("f{i}"), "constant": i}))
        .collect();
    assert!(Mapping::parse(&json!({"fields": ok})).is_ok());

    let ts: Vec<Value> = (0..=MAX_TRANSFORMS)
        .map(|_| json!({"op": "trim"}))
        .collect();
    assert_eq!(
        parse_errors(json!({"fields": [{"target": "t", "source": "s", "transforms": ts}]})),
        vec!["fields[0].transforms: at most 20 transforms (got 21)"]
    );
    let deep = vec!["p"; MAX_PATH_SEGMENTS + 1].join(".");
    assert_eq!(
        parse_errors(json!({"fields": [{"target": deep, "source": deep}]})),
        vec![
            "fields[0].target: at most 16 segments (got 17)",
            "fields[0].source: at most 16 segments (got 17)"
        ]
    );
    let ok_path = vec!["p"; MAX_PATH_SEGMENTS].join(".");
    assert!(Mapping::parse(&json!({"fields": [{"target": ok_path, "source": ok_path}]})).is_ok());
}

#[test]
fn serialization_is_minimal_and_round_trips() {
    let v = json!({"fields": [
        {"target": "k", "constant": null, "default": null, "required": true},
        {"target": "p", "source": "p", "transforms": [
            {"op": "lookup", "table": {"1": 1}, "default": null},
            {"op": "scale", "factor": 2.0, "decimals": 0},
            {"op": "datetime", "from": "unix", "to": "date", "to_tz": "Asia/Kolkata"},
            {"op": "empty_to_null"}
        ]}
    ]});
    let m = Mapping::parse(&v).unwrap();
    assert_eq!(serde_json::to_value(&m).unwrap(), v);
    assert_eq!(
        Mapping::parse(&serde_json::to_value(&m).unwrap()).unwrap(),
        m
    );
}

// ---- property tests ----

fn arb_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "0", "1", "name"]).prop_map(str::to_owned)
}

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec(arb_key(), 1..4).prop_map(|s| s.join("."))
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1_000_000i64..1_000_000).prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[ a-zA-Z0-9,;:./+-]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "2026-11-22 06:51:34",
            "2026-03-29 02:30:00",
            "2026-11-22T06:51:34+01:00",
            "1795330294",
            " 12.5 ",
            "",
            "2",
            "a,b,c",
            "22/11/2026",
            "true",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(arb_key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_record() -> impl Strategy<Value = Value> {
    prop_oneof![
        9 => prop::collection::btree_map(arb_key(), arb_json(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => arb_json(),
    ]
}

fn arb_tz() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        prop::sample::select(vec![
            "UTC",
            "Europe/Paris",
            "Asia/Kolkata",
            "America/New_York",
            "Australia/Lord_Howe",
        ])
        .prop_map(str::to_owned),
    )
}

fn arb_transform() -> impl Strategy<Value = Transform> {
    prop_oneof![
        Just(Transform::Trim {}),
        Just(Transform::Lower {}),
        Just(Transform::Upper {}),
        Just(Transform::EmptyToNull {}),
        (-1e4f64..1e4, prop::option::of(0u32..=MAX_DECIMALS))
            .prop_map(|(factor, decimals)| Transform::Scale { factor, decimals }),
        (
            prop::sample::select(vec![
                "rfc3339",
                "unix",
                "date",
                "%Y-%m-%d %H:%M:%S",
                "%d/%m/%Y",
                "%Y-%m-%dT%H:%M:%S%z",
                "%s"
            ]),
            arb_tz(),
            prop::sample::select(vec![
                "rfc3339",
                "unix",
                "date",
                "%d.%m.%Y %H:%M",
                "%A %e %B %Y %Z",
                "%s"
            ]),
            arb_tz(),
        )
            .prop_map(|(from, from_tz, to, to_tz)| Transform::Datetime {
                from: from.to_owned(),
                from_tz,
                to: to.to_owned(),
                to_tz,
            }),
        (
            prop::collection::btree_map(
                prop::sample::select(vec!["0", "1", "2", "a", "true", "2.5"])
                    .prop_map(str::to_owned),
                arb_json(),
                1..4
            ),
            prop::option::of(arb_json()),
        )
            .prop_map(|(table, default)| Transform::Lookup { table, default }),
        (
            prop::sample::select(vec![",", ";", " - ", "/", "a"]).prop_map(str::to_owned),
            prop::option::of(0usize..3),
        )
            .prop_map(|(separator, index)| Transform::Split { separator, index }),
    ]
}

/// Everything of a rule but its target, which the mapping strategy makes unique.
fn arb_rule() -> impl Strategy<Value = FieldRule> {
    let source = prop_oneof![
        arb_path().prop_map(|p| (Some(p), None, None, None)),
        arb_json().prop_map(|c| (None, Some(c), None, None)),
        (
            prop::collection::vec(arb_path(), 1..4),
            prop::option::of(prop::sample::select(vec!["", " ", ", "]).prop_map(str::to_owned)),
        )
            .prop_map(|(paths, sep)| (None, None, Some(paths), sep)),
    ];
    (
        source,
        prop::collection::vec(arb_transform(), 0..4),
        prop::option::of(arb_json()),
        any::<bool>(),
    )
        .prop_map(
            |((source, constant, concat, separator), transforms, default, required)| FieldRule {
                target: String::new(),
                source,
                constant,
                concat,
                separator,
                transforms,
                default,
                required,
            },
        )
}

fn arb_mapping() -> impl Strategy<Value = Mapping> {
    prop::collection::vec((arb_rule(), prop::option::of(0u8..3)), 1..8).prop_map(|rules| {
        Mapping {
            fields: rules
                .into_iter()
                .enumerate()
                .map(|(i, (mut rule, group))| {
                    // Leaves `t<i>` are unique, groups `g<n>` are never leaves: no overlaps.
                    rule.target = match group {
                        Some(g) => format!("g{g}.t{i}"),
                        None => format!("t{i}"),
                    };
                    rule
                })
                .collect(),
        }
    })
}

proptest! {
    #[test]
    fn valid_mappings_validate_apply_without_panicking_and_round_trip(
        m in arb_mapping(),
        record in arb_record(),
    ) {
        prop_assert_eq!(m.validate(), Ok(()));
        match m.apply(&record) {
            Ok(out) => {
                prop_assert!(out.is_object());
                for rule in &m.fields {
                    let at = rule.target.split('.').try_fold(&out, |cur, seg| cur.get(seg));
                    prop_assert!(at.is_some(), "{} missing from {}", rule.target, out);
                }
            }
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
        let v = serde_json::to_value(&m).unwrap();
        prop_assert_eq!(Mapping::parse(&v), Ok(m));
    }
}
