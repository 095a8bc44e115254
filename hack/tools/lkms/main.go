// Command lkms serves the local-kms AWS KMS emulator on a loopback address only.
//
// The upstream binary listens on ":PORT", that is on every interface, which a test estate must
// never do. This wrapper reuses the emulator's request handler and key database and binds the
// address given by -listen (default 127.0.0.1:0); it prints the bound address on stdout's first
// line so a caller that asked for port 0 learns the port.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/nsmithuk/local-kms/src"
	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to serve on")
	dataDir := flag.String("data", filepath.Join(os.TempDir(), "lkms"), "directory for the key database")
	region := flag.String("region", "eu-west-2", "AWS region the emulator reports")
	account := flag.String("account", "111122223333", "AWS account ID the emulator reports")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		log.Fatalf("lkms: -listen %q: %v", *listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		log.Fatalf("lkms: -listen %q: only loopback addresses are allowed", *listen)
	}
	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		log.Fatalf("lkms: -data: %v", err)
	}
	config.AWSRegion = *region
	config.AWSAccountId = *account
	config.DatabasePath = abs

	db := data.NewDatabase(abs)
	defer db.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("lkms: listen %s: %v", *listen, err)
	}
	fmt.Println(ln.Addr().String())
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { src.HandleRequest(w, r, db) })
	log.Fatal(http.Serve(ln, handler))
}
