package action

import (
	"strings"
	"testing"

	"github.com/vaultctl/vaultctl/config"
)

func TestDatabaseForFindsTheRoleAndItsMount(t *testing.T) {
	cfg := &config.Config{Databases: []config.Database{
		{Name: "a", Mount: "database", Roles: []config.DatabaseRole{{Name: "app"}, {Name: "shared"}}},
		{Name: "b", Mount: "pg2", Roles: []config.DatabaseRole{{Name: "shared"}}},
	}}
	if d, err := databaseFor(cfg, "", "app"); err != nil || d.Name != "a" {
		t.Errorf("app: %v, %v", d.Name, err)
	}
	if _, err := databaseFor(cfg, "", "shared"); err == nil || !strings.Contains(err.Error(), "--mount") {
		t.Errorf("a role on two mounts must ask for --mount: %v", err)
	}
	if d, err := databaseFor(cfg, "pg2", "shared"); err != nil || d.Name != "b" {
		t.Errorf("shared on pg2: %v, %v", d.Name, err)
	}
	if _, err := databaseFor(cfg, "", "nope"); err == nil || !strings.Contains(err.Error(), "database/app, database/shared, pg2/shared") {
		t.Errorf("an unknown role must list the known ones: %v", err)
	}
	if _, err := databaseFor(&config.Config{}, "", "nope"); err == nil || !strings.Contains(err.Error(), "lists none") {
		t.Errorf("no databases: %v", err)
	}
}
