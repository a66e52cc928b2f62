-- Patients: the profile each keeps, and each hospital's tags of its patients.

-- name: put_profile
INSERT INTO patient_profiles (patient_id, birth_date, sex) VALUES ($1, $2, $3)
ON CONFLICT (patient_id) DO UPDATE SET birth_date = EXCLUDED.birth_date, sex = EXCLUDED.sex,
    updated_at = now()
RETURNING patient_id, birth_date, sex, updated_at;

-- name: get_profile
SELECT patient_id, birth_date, sex, updated_at FROM patient_profiles WHERE patient_id = $1;

-- name: delete_patient_tags
DELETE FROM patient_tags WHERE hospital_id = $1 AND patient_id = $2;

-- name: insert_patient_tags
INSERT INTO patient_tags (hospital_id, patient_id, tag) SELECT $1, $2, unnest($3::text[]);

-- name: get_patient_tags
-- Sorted as Python sorts (by code point), so a PUT's answer and a later GET agree.
SELECT tag FROM patient_tags WHERE hospital_id = $1 AND patient_id = $2 ORDER BY tag COLLATE "C";
