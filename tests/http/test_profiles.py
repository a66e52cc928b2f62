"""Patients: the profile each patient keeps, and each hospital's own tags of its patients."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from server.shapes import profiles as shapes
from tests.http.conftest import Client, admin_token, patient_token, unique


def earliest_zone_today() -> dt.date:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=14)).date()


async def put_profile(api: Client, patient: str, body: Any) -> Any:
    return await api.call("PUT", "/v1/me/profile", token=patient_token(patient), json=body)


async def test_a_profile_is_set_read_back_and_replaced_whole(api: Client) -> None:
    patient = unique("p")
    first = await put_profile(api, patient, {"birth_date": "1950-07-01", "sex": "female"})
    assert first.status == 200
    profile = first.shaped(shapes.Profile)
    assert (profile.patient_id, profile.birth_date, profile.sex) == (
        patient,
        dt.date(1950, 7, 1),
        "female",
    )
    read = await api.call("GET", "/v1/me/profile", token=patient_token(patient))
    assert read.status == 200 and read.json == first.json

    # A sex left out is not stated: the PUT replaces the whole profile.
    second = await put_profile(api, patient, {"birth_date": "1951-01-31"})
    assert second.status == 200
    assert (second.json["birth_date"], second.json["sex"]) == ("1951-01-31", None)
    assert second.shaped(shapes.Profile).updated_at >= profile.updated_at


async def test_a_patient_without_a_profile_gets_profile_not_found(api: Client) -> None:
    answer = await api.call("GET", "/v1/me/profile", token=patient_token(unique("p")))
    answer.problem(404, "profile_not_found")


async def test_each_patient_sees_only_their_own_profile(api: Client) -> None:
    alice, bob = unique("alice"), unique("bob")
    await put_profile(api, alice, {"birth_date": "1990-01-01", "sex": "other"})
    (await api.call("GET", "/v1/me/profile", token=patient_token(bob))).problem(
        404, "profile_not_found"
    )


async def test_a_patient_born_today_anywhere_may_be_registered(api: Client) -> None:
    today = earliest_zone_today().isoformat()
    answer = await put_profile(api, unique("p"), {"birth_date": today})
    assert answer.status == 200 and answer.json["birth_date"] == today


@pytest.mark.parametrize(
    "body",
    [
        {"birth_date": (earliest_zone_today() + dt.timedelta(days=1)).isoformat()},
        {"birth_date": "1899-12-31"},
        {"birth_date": "2001-02-30"},
        {"birth_date": "2001-2-3"},
        {"birth_date": "2001-02-03T00:00:00Z"},
        {"birth_date": 19800101},
        {"birth_date": None},
        {"birth_date": "1980-01-01", "sex": "unknown"},
        {"birth_date": "1980-01-01", "sex": None},
        {"birth_date": "1980-01-01", "age": 44},
        {"sex": "male"},
        [],
    ],
)
async def test_an_invalid_profile_is_refused_and_nothing_stored(api: Client, body: Any) -> None:
    patient = unique("p")
    (await put_profile(api, patient, body)).problem(400, "invalid_request")
    (await api.call("GET", "/v1/me/profile", token=patient_token(patient))).problem(
        404, "profile_not_found"
    )


# --- tags -------------------------------------------------------------------------------------


def tags_path(patient: str, hospital: str | None) -> str:
    query = f"?hospital_id={hospital}" if hospital is not None else ""
    return f"/v1/admin/patients/{patient}/tags{query}"


async def put_tags(api: Client, patient: str, hospital: str | None, tags: Any) -> Any:
    return await api.call(
        "PUT", tags_path(patient, hospital), token=admin_token(), json={"tags": tags}
    )


async def get_tags(api: Client, patient: str, hospital: str | None) -> Any:
    return await api.call("GET", tags_path(patient, hospital), token=admin_token())


async def test_tags_are_set_deduplicated_sorted_and_read_back(api: Client) -> None:
    patient, hospital = unique("p"), unique("h")
    answer = await put_tags(api, patient, hospital, ["vip", "高血压", "diabetes", "vip"])
    assert answer.status == 200
    tags = answer.shaped(shapes.PatientTags)
    assert (tags.hospital_id, tags.patient_id) == (hospital, patient)
    assert tags.tags == ["diabetes", "vip", "高血压"]
    read = await get_tags(api, patient, hospital)
    assert read.status == 200 and read.json == answer.json


async def test_a_patient_without_tags_has_an_empty_list(api: Client) -> None:
    patient, hospital = unique("p"), unique("h")
    answer = await get_tags(api, patient, hospital)
    assert answer.status == 200
    assert answer.json == {"hospital_id": hospital, "patient_id": patient, "tags": []}


async def test_one_hospital_never_sees_another_hospitals_tags(api: Client) -> None:
    patient, mine, theirs = unique("p"), unique("h"), unique("h")
    await put_tags(api, patient, mine, ["asthma"])
    await put_tags(api, patient, theirs, ["late-payer"])
    assert (await get_tags(api, patient, mine)).json["tags"] == ["asthma"]
    assert (await get_tags(api, patient, theirs)).json["tags"] == ["late-payer"]

    # Replacing (here: emptying) one hospital's set leaves the other's alone.
    assert (await put_tags(api, patient, mine, [])).json["tags"] == []
    assert (await get_tags(api, patient, mine)).json["tags"] == []
    assert (await get_tags(api, patient, theirs)).json["tags"] == ["late-payer"]


@pytest.mark.parametrize(
    ("hospital", "tags"),
    [
        (None, ["vip"]),
        ("a b", ["vip"]),
        ("h1", [""]),
        ("h1", ["x" * 65]),
        ("h1", ["line\nbreak"]),
        ("h1", ["tab\there"]),
        ("h1", [f"t{i}" for i in range(51)]),
        ("h1", "vip"),
        ("h1", [7]),
        ("h1", None),
    ],
)
async def test_invalid_tags_or_no_hospital_are_refused(
    api: Client, hospital: str | None, tags: Any
) -> None:
    patient = unique("p")
    (await put_tags(api, patient, hospital, tags)).problem(400, "invalid_request")
    if hospital == "h1":
        assert (await get_tags(api, patient, hospital)).json["tags"] == []


async def test_the_most_tags_of_the_longest_kind_are_accepted(api: Client) -> None:
    tags = [f"{i:02d}" + "字" * 62 for i in range(shapes.MAX_TAGS)]
    answer = await put_tags(api, unique("p"), unique("h"), tags)
    assert answer.status == 200 and answer.json["tags"] == tags


async def test_reading_tags_needs_the_hospital(api: Client) -> None:
    (await get_tags(api, unique("p"), None)).problem(400, "invalid_request")
    path = f"/v1/admin/patients/{unique('p')}/tags?hospital_id=h1&hospital_id=h2"
    (await api.call("GET", path, token=admin_token())).problem(400, "invalid_request")
