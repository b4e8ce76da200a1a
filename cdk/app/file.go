package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Keys is every context key the app reads.
func Keys() []string {
	return []string{KeyAccount, KeyRegion, KeyCluster, KeyAmiID, KeyAmiSSM, KeyVpcCIDR, KeyAZs,
		KeyInstancesPerAZ, KeyInstanceTypes, KeyOnDemandBase, KeyEipPool, KeyEipPoolSize,
		KeyHeadscaleURL, KeyHeadscaleDomain, KeyAcmeEmail, KeyAdmins, KeyAcmeChallenge, KeyCertSSM,
		KeyKeySSM, KeyZoneID, KeyZoneName, KeyAuthKeySSM,
		KeyAlarmEmail, KeyAlarms, KeyPlatformConfig}
}

// WithFile returns a context reader that falls back to the settings file at path (a JSON
// object of context keys; `-c key=value` still wins). An unknown key is an error: a typo
// must not silently deploy the default. A relative platform-config in the file is relative
// to the file's directory.
func WithFile(get func(string) any, path string) (func(string) any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("settings %s: want a JSON object of context keys: %w", path, err)
	}
	known := Keys()
	for k, v := range m {
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("settings %s: unknown key %q (known: %s)", path, k, strings.Join(known, ", "))
		}
		switch v.(type) {
		case string, json.Number, bool:
		default:
			return nil, fmt.Errorf("settings %s: %q: want a string, number or boolean, got %s", path, k, v)
		}
	}
	return func(k string) any {
		if v := get(k); v != nil {
			return v
		}
		if v, ok := m[k]; ok {
			// A relative platform file is next to the settings file.
			if s, isStr := v.(string); isStr && k == KeyPlatformConfig && s != "" && !filepath.IsAbs(s) {
				return filepath.Join(filepath.Dir(path), s)
			}
			return v
		}
		return nil
	}, nil
}
