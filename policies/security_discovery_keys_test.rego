package esbake.rules.security_test

import data.esbake.fixtures
import data.esbake.rules.security

key_settings(doc) := s if {
	s := {f.setting | some f in security.deny with input as doc; f.id == "ES-SEC-002"}
}

test_keys_seed_keystore_flagged if {
	key_settings(fixtures.seed) == {"discovery.ec2.access_key", "discovery.ec2.secret_key"}
}

test_keys_clean_passes if {
	count(key_settings(fixtures.clean)) == 0
}

test_keys_in_yml_flagged if {
	"cloud.aws.secret_key" in key_settings(fixtures.with_yml({"cloud.aws.secret_key": "redacted"}))
}

test_keys_allowed_without_instance_profile_policy if {
	doc := json.patch(fixtures.seed, [{"op": "replace", "path": "/policy/expect_instance_profile", "value": false}])
	count(key_settings(doc)) == 0
}

test_keys_policy_defaults_to_instance_profile if {
	doc := json.patch(fixtures.seed, [{"op": "remove", "path": "/policy"}])
	count(key_settings(doc)) == 2
}
