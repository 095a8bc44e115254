package config

import (
	"encoding/json"
	"reflect"
	"strings"
)

// JSONSchema describes the config for editors (yaml-language-server, VS Code). It is generated
// from the same struct tags the loader uses, so the two cannot drift apart.
func JSONSchema() ([]byte, error) {
	s := schemaFor(configType)
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://vaultctl.io/schemas/v1alpha1/platform.json"
	s["title"] = "vaultctl Platform config"
	s["required"] = []string{"apiVersion", "kind"}
	props := s["properties"].(map[string]any)
	props["apiVersion"].(map[string]any)["const"] = APIVersion
	props["kind"].(map[string]any)["const"] = Kind
	gatesSchema(props)
	return json.MarshalIndent(s, "", "  ")
}

func schemaFor(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`}
	case t.Kind() == reflect.Struct:
		props := map[string]any{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			p := schemaFor(f.Type)
			if d := f.Tag.Get("desc"); d != "" {
				p["description"] = d
			}
			if e := f.Tag.Get("enum"); e != "" {
				if f.Type.Kind() == reflect.Slice {
					p["items"] = map[string]any{"type": "string", "enum": strings.Split(e, ",")}
				} else {
					p["enum"] = strings.Split(e, ",")
				}
			}
			props[name] = p
		}
		return map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	case t.Kind() == reflect.Slice:
		return map[string]any{"type": "array", "items": schemaFor(t.Elem())}
	case t.Kind() == reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}}
	case t.Kind() == reflect.Int:
		return map[string]any{"type": "integer"}
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	default:
		return map[string]any{"type": "string"}
	}
}
