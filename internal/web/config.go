package web

import (
	"mime"
	"net/http"
	"strings"
)

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.settings.Read(r))
	return nil
}

// crossOrigin refuses a state-changing request a browser sent from another
// site (Sec-Fetch-Site, else Origin against Host). A request with neither
// header is not from a browser's cross-site form, so curl and old clients
// still work.
var crossOrigin = http.NewCrossOriginProtection()

// postConfig changes some or all of the browser's settings. Anything
// invalid rejects the whole request and changes nothing.
func (s *Server) postConfig(w http.ResponseWriter, r *http.Request) error {
	// Both checks come before the body is read and a cookie written: a
	// wall display's settings must not be changed by a page it visits.
	if crossOrigin.Check(r) != nil {
		return &apiError{http.StatusForbidden, "cross-origin request refused: settings can only be changed from the dashboard's own origin"}
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		// A cross-site form can only send form or text/plain bodies; JSON
		// needs a CORS preflight, which this server never grants.
		w.Header().Set("Accept-Post", "application/json")
		return &apiError{http.StatusUnsupportedMediaType, "Content-Type must be application/json"}
	}
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	next, err := ApplySettingsPatch(s.settings.Read(r), body)
	if err != nil {
		return badRequest("%s", err.Error())
	}
	s.settings.Write(w, r, next)
	writeJSON(w, http.StatusOK, next)
	return nil
}

// isJSONContentType accepts application/json, with no parameter but a
// UTF-8 charset: JSON is UTF-8, so any other charset would be misread.
func isJSONContentType(v string) bool {
	mediaType, params, err := mime.ParseMediaType(v)
	if err != nil || mediaType != "application/json" {
		return false
	}
	for name, value := range params {
		if name != "charset" || !strings.EqualFold(value, "utf-8") {
			return false
		}
	}
	return true
}
