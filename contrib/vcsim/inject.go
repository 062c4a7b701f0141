package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultRule makes a fraction of the calls to one SOAP method fail or wait.
type FaultRule struct {
	Method   string
	Fraction float64
	// Delay is zero for mode "fail" (a SystemError fault), else the extra wait.
	Delay time.Duration
}

// ParseFaultRule reads "Method:fraction[:fail|delay=DURATION]".
func ParseFaultRule(v string) (FaultRule, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return FaultRule{}, fmt.Errorf("fault %q: want Method:fraction[:fail|delay=DURATION]", v)
	}
	frac, err := strconv.ParseFloat(parts[1], 64)
	if err != nil || frac < 0 || frac > 1 {
		return FaultRule{}, fmt.Errorf("fault %q: fraction must be a number from 0 to 1", v)
	}
	r := FaultRule{Method: parts[0], Fraction: frac}
	if len(parts) == 3 {
		mode := parts[2]
		switch {
		case mode == "fail":
		case strings.HasPrefix(mode, "delay="):
			d, err := time.ParseDuration(strings.TrimPrefix(mode, "delay="))
			if err != nil || d <= 0 {
				return FaultRule{}, fmt.Errorf("fault %q: delay needs a positive duration such as delay=200ms", v)
			}
			r.Delay = d
		default:
			return FaultRule{}, fmt.Errorf("fault %q: mode must be fail or delay=DURATION", v)
		}
	}
	return r, nil
}

// Injector wraps the SOAP endpoint: it delays every call and fails or slows
// the calls that the fault rules pick, before the simulator sees them.
type Injector struct {
	next  http.Handler
	delay time.Duration
	rules map[string][]FaultRule
	mu    sync.Mutex
	rnd   *rand.Rand
}

// NewInjector returns next wrapped with the per-call delay and the fault rules.
func NewInjector(next http.Handler, delay time.Duration, rules []FaultRule, rnd *rand.Rand) *Injector {
	in := &Injector{next: next, delay: delay, rules: map[string][]FaultRule{}, rnd: rnd}
	for _, r := range rules {
		in.rules[r.Method] = append(in.rules[r.Method], r)
	}
	return in
}

func (in *Injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || (in.delay == 0 && len(in.rules) == 0) {
		in.next.ServeHTTP(w, r)
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	method := SOAPMethod(body)
	if in.delay > 0 {
		time.Sleep(in.delay)
	}
	for _, rule := range in.rules[method] {
		if !in.pick(rule.Fraction) {
			continue
		}
		if rule.Delay > 0 {
			time.Sleep(rule.Delay)
			continue
		}
		writeSystemError(w, method)
		return
	}
	in.next.ServeHTTP(w, r)
}

func (in *Injector) pick(fraction float64) bool {
	if fraction >= 1 {
		return true
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.rnd.Float64() < fraction
}

// SOAPMethod is the local name of the first element inside the SOAP Body.
func SOAPMethod(body []byte) string {
	d := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			if inBody {
				return se.Name.Local
			}
			inBody = se.Name.Local == "Body"
		}
	}
}

func writeSystemError(w http.ResponseWriter, method string) {
	var reason bytes.Buffer
	_ = xml.EscapeText(&reason, []byte("injected fault in "+method))
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>%s</faultstring><detail><SystemErrorFault xmlns="urn:vim25" xsi:type="SystemError"><reason>%s</reason></SystemErrorFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>`,
		reason.String(), reason.String())
}

// readBody reads a request's body and puts it back for the handlers after this one; false
// when it could not be read (the client was answered 400).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, true
}
