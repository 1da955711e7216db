import { createHash } from 'node:crypto';

/**
 * Table definitions for the Dataverse stand-in (fakeDataverse.ts), answered in the shapes of the
 * real Web API. Nothing here was read from a live organization; each fact has a source:
 *
 * - contact: every column of a real organization with Dynamics 365 Sales and Power Pages
 *   installed, as its Latebound Constants Generator output lists them (type, SchemaName,
 *   AttributeOf, YomiOf, CalculationOf; public repository file "ContactField" in namespace
 *   ECSM.Models.Dynamics, found by searching for `SchemaName: CreditLimit_Base`), which also shows
 *   that organization's own column `ecsm_adobjectid`. Choices, lookup targets and which columns
 *   are valid for create, update and read come from Microsoft's table reference
 *   (MicrosoftDocs/powerapps-docs, powerapps-docs/developer/data-platform/reference/entities/contact.md),
 *   the Sales options (msdyn_decisioninfluencetag, msdyn_orgchangestatus, the Power Pages
 *   languages of mspp_userpreferredlcid) from generated enums in public repositories. The three
 *   addresses repeat one set of 26 columns, generated here from that pattern.
 * - account: the columns of Microsoft's account reference (…/reference/entities/account.md,
 *   writable and read-only lists), with the choices the fixtures use, plus `new_name`, the
 *   custom column of the organization that sent fixture 06.
 * - shko_allfields: a custom table of the organization that sent fixture 03, rebuilt from that
 *   payload alone (its columns, their kinds, and option labels from its FormattedValues); no
 *   metadata of it is public.
 *
 * The response shapes follow "Query table definitions using the Web API" and "Retrieve table
 * definitions by name or MetadataId" (learn.microsoft.com/power-apps/developer/data-platform/webapi/…):
 * `@odata.type` on each derived attribute type, `AttributeTypeName: {"Value": …}`, labels as
 * `{"LocalizedLabels": […], "UserLocalizedLabel": {…}}`, options with `Value`, `Label`, `Color`,
 * `IsManaged`, `ParentValues`…; Customer and Owner columns are LookupAttributeMetadata
 * (as a real `$expand=Attributes` response in keijiinouehotmail/DataverseConnectionViewerPCF,
 * ConnectionViewer/src/api/SampleDemo_Metadata_en.ts, shows), and a base-typed attribute
 * (Uniqueidentifier in that sample, Virtual) carries no `@odata.type`.
 */

export interface ColumnFacts {
  logicalName: string;
  schemaName: string;
  /** The Web API AttributeType. */
  attributeType: string;
  /** AttributeTypeName.Value when it is not `${attributeType}Type`. */
  attributeTypeName?: string;
  displayName: string | null;
  attributeOf: string | null;
  isValidForCreate: boolean;
  isValidForUpdate: boolean;
  isValidForRead: boolean;
  options?: Array<[number, string]>;
  /** The global choice whose options these are (then served as GlobalOptionSet too). */
  globalChoice?: string;
  targets?: string[];
}

export interface TableFacts {
  logicalName: string;
  schemaName: string;
  entitySetName: string;
  primaryIdAttribute: string;
  primaryNameAttribute: string;
  displayName: string;
  columns: ColumnFacts[];
}

/**
 * One column a line: `logicalname|AttributeType|SchemaName|Display name|flags`, flags among
 * `ro` (not valid for create or update), `cr` (create only), `noc` (update only), `noread`,
 * `of=<column>`, `kind=<AttributeTypeName>`, `t=<table>,<table>`, `o=<value>:<label>;…` (`_` for a
 * space), `global=<choice>` (the options of a global choice), and
 * the companions Dataverse adds: `+name` (a lookup's name, or a choice's or yes/no's label),
 * `+yomi` (a lookup's phonetic name) and `+type` (a lookup's table).
 */
function parseColumns(text: string): ColumnFacts[] {
  const columns: ColumnFacts[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [logicalName = '', attributeType = '', schemaName = '', displayName = '', flagText = ''] = line.split('|');
    const flags = flagText.split(' ').filter(Boolean);
    const value = (name: string) => flags.find((flag) => flag.startsWith(`${name}=`))?.slice(name.length + 1);
    const has = (name: string) => flags.includes(name);
    const column: ColumnFacts = {
      logicalName,
      schemaName,
      attributeType,
      ...(value('kind') ? { attributeTypeName: value('kind') } : {}),
      displayName: displayName || null,
      attributeOf: value('of') ?? null,
      isValidForCreate: !has('ro') && !has('noc'),
      isValidForUpdate: !has('ro') && !has('cr'),
      isValidForRead: !has('noread'),
    };
    const options = value('o');
    if (options !== undefined)
      column.options = options
        .split(';')
        .map((option) => [Number(option.slice(0, option.indexOf(':'))), option.slice(option.indexOf(':') + 1).replaceAll('_', ' ')]);
    const globalChoice = value('global');
    if (globalChoice !== undefined) column.globalChoice = globalChoice;
    const targets = value('t');
    if (targets !== undefined) column.targets = targets.split(',');
    columns.push(column);
    const lookup = ['Lookup', 'Customer', 'Owner'].includes(attributeType);
    const companion = (suffix: string, schemaSuffix: string, type: string) =>
      columns.push({
        logicalName: `${logicalName}${suffix}`,
        schemaName: `${schemaName}${schemaSuffix}`,
        attributeType: type,
        displayName: null,
        attributeOf: logicalName,
        isValidForCreate: false,
        isValidForUpdate: false,
        isValidForRead: true,
      });
    if (has('+name')) companion('name', 'Name', lookup ? 'String' : 'Virtual');
    if (has('+yomi')) companion('yominame', 'YomiName', 'String');
    if (has('+type')) {
      companion('type', 'Type', 'EntityName');
      // The table of an owner or customer is given when the lookup is written (OwnerIdType is writable).
      const type = columns.at(-1)!;
      type.isValidForCreate = column.isValidForCreate;
      type.isValidForUpdate = column.isValidForUpdate;
    }
  }
  return columns;
}

/** The 26 columns of address N of account and contact, and the companions of its choices. */
function address(n: number, first: boolean): string {
  const a = `address${n}`;
  const A = `Address${n}`;
  const choice = (code: string, Code: string, label: string, options: string) =>
    `${a}_${code}|Picklist|${A}_${Code}|Address ${n}: ${label}|o=${options} +name`;
  return [
    `${a}_addressid|Uniqueidentifier|${A}_AddressId|Address ${n}: ID|`,
    first
      ? choice('addresstypecode', 'AddressTypeCode', 'Address Type', '1:Bill_To;2:Ship_To;3:Primary;4:Other')
      : choice('addresstypecode', 'AddressTypeCode', 'Address Type', '1:Default_Value'),
    `${a}_city|String|${A}_City|Address ${n}: City|`,
    `${a}_composite|Memo|${A}_Composite|Address ${n}|ro`,
    `${a}_country|String|${A}_Country|Address ${n}: Country/Region|`,
    `${a}_county|String|${A}_County|Address ${n}: County|`,
    `${a}_fax|String|${A}_Fax|Address ${n}: Fax|`,
    first
      ? choice('freighttermscode', 'FreightTermsCode', 'Freight Terms', '1:FOB;2:No_Charge')
      : choice('freighttermscode', 'FreightTermsCode', 'Freight Terms', '1:Default_Value'),
    `${a}_latitude|Double|${A}_Latitude|Address ${n}: Latitude|`,
    `${a}_line1|String|${A}_Line1|Address ${n}: Street 1|`,
    `${a}_line2|String|${A}_Line2|Address ${n}: Street 2|`,
    `${a}_line3|String|${A}_Line3|Address ${n}: Street 3|`,
    `${a}_longitude|Double|${A}_Longitude|Address ${n}: Longitude|`,
    `${a}_name|String|${A}_Name|Address ${n}: Name|`,
    `${a}_postalcode|String|${A}_PostalCode|Address ${n}: ZIP/Postal Code|`,
    `${a}_postofficebox|String|${A}_PostOfficeBox|Address ${n}: Post Office Box|`,
    `${a}_primarycontactname|String|${A}_PrimaryContactName|Address ${n}: Primary Contact Name|`,
    first
      ? choice(
          'shippingmethodcode',
          'ShippingMethodCode',
          'Shipping Method',
          '1:Airborne;2:DHL;3:FedEx;4:UPS;5:Postal_Mail;6:Full_Load;7:Will_Call',
        )
      : choice('shippingmethodcode', 'ShippingMethodCode', 'Shipping Method', '1:Default_Value'),
    `${a}_stateorprovince|String|${A}_StateOrProvince|Address ${n}: State/Province|`,
    `${a}_telephone1|String|${A}_Telephone1|Address ${n}: Phone|`,
    `${a}_telephone2|String|${A}_Telephone2|Address ${n}: Telephone 2|`,
    `${a}_telephone3|String|${A}_Telephone3|Address ${n}: Telephone 3|`,
    `${a}_upszone|String|${A}_UPSZone|Address ${n}: UPS Zone|`,
    `${a}_utcoffset|Integer|${A}_UTCOffset|Address ${n}: UTC Offset|`,
  ].join('\n');
}

/** Columns account and contact share, as both references list them. */
const COMMON = `
aging30|Money|Aging30|Aging 30|ro
aging30_base|Money|Aging30_Base|Aging 30 (Base)|ro
aging60|Money|Aging60|Aging 60|ro
aging60_base|Money|Aging60_Base|Aging 60 (Base)|ro
aging90|Money|Aging90|Aging 90|ro
aging90_base|Money|Aging90_Base|Aging 90 (Base)|ro
createdby|Lookup|CreatedBy|Created By|ro t=systemuser +name +yomi
createdbyexternalparty|Lookup|CreatedByExternalParty|Created By (External Party)|ro t=externalparty +name +yomi
createdon|DateTime|CreatedOn|Created On|ro
createdonbehalfby|Lookup|CreatedOnBehalfBy|Created By (Delegate)|ro t=systemuser +name +yomi
creditlimit|Money|CreditLimit|Credit Limit|
creditlimit_base|Money|CreditLimit_Base|Credit Limit (Base)|ro
creditonhold|Boolean|CreditOnHold|Credit Hold|+name
customersizecode|Picklist|CustomerSizeCode|Customer Size|o=1:Default_Value +name
customertypecode|Picklist|CustomerTypeCode|Relationship Type|o=1:Default_Value +name
description|Memo|Description|Description|
donotbulkemail|Boolean|DoNotBulkEMail|Do not allow Bulk Emails|+name
donotbulkpostalmail|Boolean|DoNotBulkPostalMail|Do not allow Bulk Mails|+name
donotemail|Boolean|DoNotEMail|Do not allow Emails|+name
donotfax|Boolean|DoNotFax|Do not allow Faxes|+name
donotphone|Boolean|DoNotPhone|Do not allow Phone Calls|+name
donotpostalmail|Boolean|DoNotPostalMail|Do not allow Mails|+name
donotsendmarketingmaterialname|Virtual|DoNotSendMarketingMaterialName||ro of=donotsendmm
donotsendmm|Boolean|DoNotSendMM|Send Marketing Materials|
emailaddress1|String|EMailAddress1|Email|
emailaddress2|String|EMailAddress2|Email Address 2|
emailaddress3|String|EMailAddress3|Email Address 3|
entityimage|Virtual|EntityImage|Entity Image|kind=ImageType of=entityimageid
entityimage_timestamp|BigInt|EntityImage_Timestamp||ro of=entityimageid
entityimage_url|String|EntityImage_URL||ro of=entityimageid
entityimageid|Uniqueidentifier|EntityImageId|Entity Image Id|ro
exchangerate|Decimal|ExchangeRate|Exchange Rate|ro
fax|String|Fax|Fax|
followemail|Boolean|FollowEmail|Follow Email Activity|+name
importsequencenumber|Integer|ImportSequenceNumber|Import Sequence Number|cr
isprivate|Boolean|IsPrivate||ro noread +name
lastonholdtime|DateTime|LastOnHoldTime|Last On Hold Time|
lastusedincampaign|DateTime|LastUsedInCampaign|Last Date Included in Campaign|noc
marketingonly|Boolean|MarketingOnly|Marketing Only|+name
merged|Boolean|Merged|Merged|ro +name
modifiedby|Lookup|ModifiedBy|Modified By|ro t=systemuser +name +yomi
modifiedbyexternalparty|Lookup|ModifiedByExternalParty|Modified By (External Party)|ro t=externalparty +name +yomi
modifiedon|DateTime|ModifiedOn|Modified On|ro
modifiedonbehalfby|Lookup|ModifiedOnBehalfBy|Modified By (Delegate)|ro t=systemuser +name +yomi
onholdtime|Integer|OnHoldTime|On Hold Time (Minutes)|ro
overriddencreatedon|DateTime|OverriddenCreatedOn|Record Created On|cr
ownerid|Owner|OwnerId|Owner|t=systemuser,team +name +yomi +type
owningbusinessunit|Lookup|OwningBusinessUnit|Owning Business Unit|ro t=businessunit +name
owningteam|Lookup|OwningTeam|Owning Team|ro t=team
owninguser|Lookup|OwningUser|Owning User|ro t=systemuser
participatesinworkflow|Boolean|ParticipatesInWorkflow|Participates in Workflow|+name
paymenttermscode|Picklist|PaymentTermsCode|Payment Terms|o=1:Net_30;2:2%_10,_Net_30;3:Net_45;4:Net_60 +name
preferredappointmentdaycode|Picklist|PreferredAppointmentDayCode|Preferred Day|o=0:Sunday;1:Monday;2:Tuesday;3:Wednesday;4:Thursday;5:Friday;6:Saturday +name
preferredappointmenttimecode|Picklist|PreferredAppointmentTimeCode|Preferred Time|o=1:Morning;2:Afternoon;3:Evening +name
preferredcontactmethodcode|Picklist|PreferredContactMethodCode|Preferred Method of Contact|o=1:Any;2:Email;3:Phone;4:Fax;5:Mail +name
preferredsystemuserid|Lookup|PreferredSystemUserId|Preferred User|t=systemuser +name +yomi
processid|Uniqueidentifier|ProcessId|Process|
shippingmethodcode|Picklist|ShippingMethodCode|Shipping Method|o=1:Default_Value +name
slaid|Lookup|SLAId|SLA|t=sla
slainvokedid|Lookup|SLAInvokedId|Last SLA applied|ro t=sla +name
slaname|String|SLAName||ro of=slaid
stageid|Uniqueidentifier|StageId|(Deprecated) Process Stage|
statecode|State|StateCode|Status|noc o=0:Active;1:Inactive +name
statuscode|Status|StatusCode|Status Reason|o=1:Active;2:Inactive +name
telephone1|String|Telephone1|Business Phone|
telephone2|String|Telephone2|Home Phone|
telephone3|String|Telephone3|Telephone 3|
territorycode|Picklist|TerritoryCode|Territory|o=1:Default_Value +name
timespentbymeonemailandmeetings|String|TimeSpentByMeOnEmailAndMeetings|Time Spent by me|ro
timezoneruleversionnumber|Integer|TimeZoneRuleVersionNumber|Time Zone Rule Version Number|
transactioncurrencyid|Lookup|TransactionCurrencyId|Currency|t=transactioncurrency +name
traversedpath|String|TraversedPath|(Deprecated) Traversed Path|
utcconversiontimezonecode|Integer|UTCConversionTimeZoneCode|UTC Conversion Time Zone Code|
versionnumber|BigInt|VersionNumber|Version Number|ro
`;

const CONTACT = `
accountid|Lookup|AccountId|Account|ro t=account +name +yomi
accountrolecode|Picklist|AccountRoleCode|Role|o=1:Decision_Maker;2:Employee;3:Influencer +name
${address(1, true)}
${address(2, false)}
${address(3, false)}
adx_confirmremovepassword|Boolean|adx_ConfirmRemovePassword|Confirm Remove Password|+name
adx_createdbyipaddress|String|Adx_CreatedByIPAddress|Created By IP Address|
adx_createdbyusername|String|Adx_CreatedByUsername|Created By Username|
adx_identity_accessfailedcount|Integer|adx_identity_accessfailedcount|Access Failed Count|
adx_identity_emailaddress1confirmed|Boolean|adx_identity_emailaddress1confirmed|Email Confirmed|+name
adx_identity_lastsuccessfullogin|DateTime|adx_identity_lastsuccessfullogin|Last Successful Login|
adx_identity_locallogindisabled|Boolean|adx_identity_locallogindisabled|Local Login Disabled|+name
adx_identity_lockoutenabled|Boolean|adx_identity_lockoutenabled|Lockout Enabled|+name
adx_identity_lockoutenddate|DateTime|adx_identity_lockoutenddate|Lockout End Date|
adx_identity_logonenabled|Boolean|adx_identity_logonenabled|Login Enabled|+name
adx_identity_mobilephoneconfirmed|Boolean|adx_identity_mobilephoneconfirmed|Mobile Phone Confirmed|+name
adx_identity_newpassword|String|adx_identity_newpassword|New Password Input|
adx_identity_passwordhash|String|adx_identity_passwordhash|Password Hash|
adx_identity_securitystamp|String|adx_identity_securitystamp|Security Stamp|
adx_identity_twofactorenabled|Boolean|adx_identity_twofactorenabled|Two Factor Enabled|+name
adx_identity_username|String|adx_identity_username|User Name|
adx_modifiedbyipaddress|String|Adx_ModifiedByIPAddress|Modified By IP Address|
adx_modifiedbyusername|String|Adx_ModifiedByUsername|Modified By Username|
adx_organizationname|String|Adx_OrganizationName|Organization Name|
adx_preferredlcid|Integer|adx_preferredlcid|Preferred LCID (Deprecated)|
adx_profilealert|Boolean|adx_profilealert|Profile Alert|+name
adx_profilealertdate|DateTime|adx_profilealertdate|Profile Alert Date|
adx_profilealertinstructions|Memo|adx_profilealertinstructions|Profile Alert Instructions|
adx_profileisanonymous|Boolean|Adx_ProfileIsAnonymous|Profile Is Anonymous|+name
adx_profilelastactivity|DateTime|Adx_ProfileLastActivity|Profile Last Activity|
adx_profilemodifiedon|DateTime|adx_profilemodifiedon|Profile Modified On|
adx_publicprofilecopy|Memo|adx_PublicProfileCopy|Public Profile Copy|
adx_timezone|Integer|Adx_TimeZone|Time Zone|
anniversary|DateTime|Anniversary|Anniversary|
annualincome|Money|AnnualIncome|Annual Income|
annualincome_base|Money|AnnualIncome_Base|Annual Income (Base)|ro
assistantname|String|AssistantName|Assistant|
assistantphone|String|AssistantPhone|Assistant Phone|
birthdate|DateTime|BirthDate|Birthday|
business2|String|Business2|Business Phone 2|
businesscard|Memo|BusinessCard|Business Card|
businesscardattributes|String|BusinessCardAttributes|BusinessCardAttributes|
callback|String|Callback|Callback Number|
childrensnames|String|ChildrensNames|Children's Names|
company|String|Company|Company Phone|
contactid|Uniqueidentifier|ContactId|Contact|cr
${COMMON}
defaultpricelevelid|Lookup|DefaultPriceLevelId|Price List|t=pricelevel +name
department|String|Department|Department|
ecsm_adobjectid|String|ecsm_ADObjectID|ADObjectID|
educationcode|Picklist|EducationCode|Education|o=1:Default_Value +name
employeeid|String|EmployeeId|Employee|
externaluseridentifier|String|ExternalUserIdentifier|External User Identifier|
familystatuscode|Picklist|FamilyStatusCode|Marital Status|o=1:Single;2:Married;3:Divorced;4:Widowed +name
firstname|String|FirstName|First Name|
ftpsiteurl|String|FtpSiteUrl|FTP Site|
fullname|String|FullName|Full Name|ro
gendercode|Picklist|GenderCode|Gender|o=1:Male;2:Female +name
governmentid|String|GovernmentId|Government|
haschildrencode|Picklist|HasChildrenCode|Has Children|o=1:Default_Value +name
home2|String|Home2|Home Phone 2|
isautocreate|Boolean|IsAutoCreate|Auto-created|ro noread
isbackofficecustomer|Boolean|IsBackofficeCustomer|Back Office Customer|+name
jobtitle|String|JobTitle|Job Title|
lastname|String|LastName|Last Name|
leadsourcecode|Picklist|LeadSourceCode|Lead Source|o=1:Default_Value +name
managername|String|ManagerName|Manager|
managerphone|String|ManagerPhone|Manager Phone|
mastercontactidname|String|MasterContactIdName||ro of=masterid
mastercontactidyominame|String|MasterContactIdYomiName||ro of=masterid
masterid|Lookup|MasterId|Master ID|ro t=contact
middlename|String|MiddleName|Middle Name|
mobilephone|String|MobilePhone|Mobile Phone|
msa_managingpartnerid|Lookup|msa_managingpartnerid|Managing Partner|t=account +name +yomi
msdyn_contactkpiid|Lookup|msdyn_contactkpiid|KPI|t=msdyn_contactkpiitem +name
msdyn_decisioninfluencetag|Picklist|msdyn_decisioninfluencetag|Decision influence labels|o=0:Decision_maker;1:Influencer;2:Blocker;3:Unknown +name
msdyn_disablewebtracking|Boolean|msdyn_disablewebtracking|Disable Web Tracking|+name
msdyn_gdproptout|Boolean|msdyn_gdproptout|GDPR Optout|+name
msdyn_isassistantinorgchart|Boolean|msdyn_isassistantinorgchart|Is Assistant|+name
msdyn_isminor|Boolean|msdyn_isminor|Is Minor|+name
msdyn_isminorwithparentalconsent|Boolean|msdyn_isminorwithparentalconsent|Is Minor with Parental Consent|+name
msdyn_orgchangestatus|Picklist|msdyn_orgchangestatus|Not at Company Flag|o=0:No_Feedback;1:Not_at_Company;2:Ignore +name
msdyn_portaltermsagreementdate|DateTime|msdyn_portaltermsagreementdate|Portal Terms Agreement Date|
msdyn_primarytimezone|Integer|msdyn_PrimaryTimeZone|Primary Time Zone|
mspp_userpreferredlcid|Picklist|mspp_userpreferredlcid|Preferred Language|global=powerpagelanguages o=1025:Arabic;1026:Bulgarian_-_Bulgaria;1027:Catalan_-_Catalan;1028:Chinese_-_Traditional;1029:Czech_-_Czech_Republic;1030:Danish_-_Denmark;1031:German_-_Germany;1032:Greek_-_Greece;1033:English;1035:Finnish_-_Finland;1036:French_-_France;1037:Hebrew +name
nickname|String|NickName|Nickname|
numberofchildren|Integer|NumberOfChildren|No. of Children|
originatingleadid|Lookup|OriginatingLeadId|Originating Lead|t=lead +name +yomi
pager|String|Pager|Pager|
parentcontactid|Lookup|ParentContactId|Parent Contact|ro t=contact +name +yomi
parentcustomerid|Customer|ParentCustomerId|Company Name|t=account,contact +name +yomi +type
preferredequipmentid|Lookup|PreferredEquipmentId|Preferred Facility/Equipment|t=equipment +name
preferredserviceid|Lookup|PreferredServiceId|Preferred Service|t=service +name
salutation|String|Salutation|Salutation|
spousesname|String|SpousesName|Spouse/Partner Name|
subscriptionid|Uniqueidentifier|SubscriptionId|Subscription|cr noread
suffix|String|Suffix|Suffix|
teamsfollowed|Integer|TeamsFollowed|TeamsFollowed|
websiteurl|String|WebSiteUrl|Website|
yomifirstname|String|YomiFirstName|Yomi First Name|
yomifullname|String|YomiFullName|Yomi Full Name|ro
yomilastname|String|YomiLastName|Yomi Last Name|
yomimiddlename|String|YomiMiddleName|Yomi Middle Name|
`;

const ACCOUNT = `
accountcategorycode|Picklist|AccountCategoryCode|Category|o=1:Preferred_Customer;2:Standard +name
accountclassificationcode|Picklist|AccountClassificationCode|Classification|o=1:Default_Value +name
accountid|Uniqueidentifier|AccountId|Account|cr
accountnumber|String|AccountNumber|Account Number|
accountratingcode|Picklist|AccountRatingCode|Account Rating|o=1:Default_Value +name
${address(1, true)}
${address(2, false)}
businesstypecode|Picklist|BusinessTypeCode|Business Type|o=1:Default_Value +name
${COMMON}
ftpsiteurl|String|FtpSiteURL|FTP Site|
industrycode|Picklist|IndustryCode|Industry|o=1:Accounting;2:Agriculture_and_Non-petrol_Natural_Resource_Extraction;3:Broadcasting_Printing_and_Publishing;4:Brokers;5:Building_Supply_Retail +name
marketcap|Money|MarketCap|Market Capitalization|
marketcap_base|Money|MarketCap_Base|Market Capitalization (Base)|ro
masteraccountidname|String|MasterAccountIdName||ro of=masterid
masteraccountidyominame|String|MasterAccountIdYomiName||ro of=masterid
masterid|Lookup|MasterId|Master ID|ro t=account
name|String|Name|Account Name|
new_name|String|new_Name|Name|
numberofemployees|Integer|NumberOfEmployees|Number of Employees|
ownershipcode|Picklist|OwnershipCode|Ownership|o=1:Public;2:Private;3:Subsidiary;4:Other +name
parentaccountid|Lookup|ParentAccountId|Parent Account|t=account +name +yomi
primarycontactid|Lookup|PrimaryContactId|Primary Contact|t=contact +name +yomi
primarysatoriid|String|PrimarySatoriId|Primary Satori ID|
primarytwitterid|String|PrimaryTwitterId|Primary X ID|
revenue|Money|Revenue|Annual Revenue|
revenue_base|Money|Revenue_Base|Annual Revenue (Base)|ro
sharesoutstanding|Integer|SharesOutstanding|Shares Outstanding|
sic|String|SIC|SIC Code|
stockexchange|String|StockExchange|Stock Exchange|
tickersymbol|String|TickerSymbol|Ticker Symbol|
websiteurl|String|WebSiteURL|Website|
yominame|String|YomiName|Yomi Account Name|
`;

/** Rebuilt from fixture 03 alone: the kinds its values have, and the labels of its FormattedValues. */
const SHKO_ALLFIELDS = `
createdby|Lookup|CreatedBy|Created By|ro t=systemuser +name +yomi
createdon|DateTime|CreatedOn|Created On|ro
exchangerate|Decimal|ExchangeRate|Exchange Rate|ro
modifiedby|Lookup|ModifiedBy|Modified By|ro t=systemuser +name +yomi
modifiedon|DateTime|ModifiedOn|Modified On|ro
modifiedonbehalfby|Lookup|ModifiedOnBehalfBy|Modified By (Delegate)|ro t=systemuser +name +yomi
ownerid|Owner|OwnerId|Owner|t=systemuser,team +name +yomi +type
owningbusinessunit|Lookup|OwningBusinessUnit|Owning Business Unit|ro t=businessunit +name
shko_allfieldsid|Uniqueidentifier|shko_allfieldsId|All Fields|cr
shko_boolean|Boolean|shko_Boolean|Boolean|+name
shko_choice|Picklist|shko_Choice|Choice|o=342490000:Zero;342490001:One;342490002:Two +name
shko_choices|Virtual|shko_Choices|Choices|kind=MultiSelectPicklistType o=342490000:Zero;342490001:One;342490002:Two +name
shko_currency|Money|shko_Currency|Currency|
shko_currency_base|Money|shko_currency_Base|Currency (Base)|ro
shko_datetime|DateTime|shko_DateTime|Date Time|
shko_decimal|Decimal|shko_Decimal|Decimal|
shko_integer|Integer|shko_Integer|Integer|
shko_lookup|Lookup|shko_Lookup|Lookup|t=systemuser +name +yomi
shko_name|String|shko_Name|Name|
shko_string|String|shko_String|String|
statecode|State|StateCode|Status|noc o=0:Active;1:Inactive +name
statuscode|Status|StatusCode|Status Reason|o=1:Active;2:Inactive +name
timezoneruleversionnumber|Integer|TimeZoneRuleVersionNumber|Time Zone Rule Version Number|
transactioncurrencyid|Lookup|TransactionCurrencyId|Currency|t=transactioncurrency +name
`;

function table(
  logicalName: string,
  schemaName: string,
  entitySetName: string,
  primaryNameAttribute: string,
  displayName: string,
  columns: string,
): TableFacts {
  const parsed = parseColumns(columns);
  const names = new Set<string>();
  for (const column of parsed) {
    if (names.has(column.logicalName)) throw new Error(`tableMetadata: ${logicalName}.${column.logicalName} is listed twice`);
    names.add(column.logicalName);
  }
  return {
    logicalName,
    schemaName,
    entitySetName,
    primaryIdAttribute: `${logicalName}id`,
    primaryNameAttribute,
    displayName,
    columns: parsed,
  };
}

export const TABLES: Readonly<Record<string, TableFacts>> = {
  account: table('account', 'Account', 'accounts', 'name', 'Account', ACCOUNT),
  contact: table('contact', 'Contact', 'contacts', 'fullname', 'Contact', CONTACT),
  shko_allfields: table('shko_allfields', 'shko_allfields', 'shko_allfieldses', 'shko_name', 'All Fields', SHKO_ALLFIELDS),
};

// ——— Response shapes ———

const LANGUAGE = 1033;

/** A stable GUID for a name, so that responses are the same on every run (MetadataIds are GUIDs). */
export function metadataId(name: string): string {
  const hex = createHash('sha256').update(name).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export function labelOf(text: string | null, owner: string) {
  if (text === null) return { LocalizedLabels: [], UserLocalizedLabel: null };
  const label = { Label: text, LanguageCode: LANGUAGE, IsManaged: true, MetadataId: metadataId(`label:${owner}`), HasChanged: null };
  return { LocalizedLabels: [label], UserLocalizedLabel: label };
}

/** The derived EntityType of AttributeMetadata for a column; null for the base type. */
export function attributeCast(column: ColumnFacts): string | null {
  if (column.attributeType === 'Virtual') {
    return (
      {
        MultiSelectPicklistType: 'MultiSelectPicklistAttributeMetadata',
        ImageType: 'ImageAttributeMetadata',
        FileType: 'FileAttributeMetadata',
      }[column.attributeTypeName ?? ''] ?? null
    );
  }
  const casts: Record<string, string | null> = {
    String: 'StringAttributeMetadata',
    Memo: 'MemoAttributeMetadata',
    Integer: 'IntegerAttributeMetadata',
    BigInt: 'BigIntAttributeMetadata',
    Decimal: 'DecimalAttributeMetadata',
    Double: 'DoubleAttributeMetadata',
    Money: 'MoneyAttributeMetadata',
    Boolean: 'BooleanAttributeMetadata',
    DateTime: 'DateTimeAttributeMetadata',
    EntityName: 'EntityNameAttributeMetadata',
    Picklist: 'PicklistAttributeMetadata',
    State: 'StateAttributeMetadata',
    Status: 'StatusAttributeMetadata',
    Lookup: 'LookupAttributeMetadata',
    Customer: 'LookupAttributeMetadata',
    Owner: 'LookupAttributeMetadata',
    PartyList: 'LookupAttributeMetadata',
    ManagedProperty: 'ManagedPropertyAttributeMetadata',
    Uniqueidentifier: null,
  };
  return casts[column.attributeType] ?? null;
}

/** Every AttributeMetadata property a column answers with (before $select). */
export function attributeProperties(tableName: string, column: ColumnFacts): Record<string, unknown> {
  return {
    LogicalName: column.logicalName,
    SchemaName: column.schemaName,
    AttributeType: column.attributeType,
    AttributeTypeName: { Value: column.attributeTypeName ?? `${column.attributeType}Type` },
    AttributeOf: column.attributeOf,
    EntityLogicalName: tableName,
    IsCustomAttribute: /^(new|ecsm|shko)_/.test(column.logicalName),
    IsValidForRead: column.isValidForRead,
    IsValidForCreate: column.isValidForCreate,
    IsValidForUpdate: column.isValidForUpdate,
    IsPrimaryId: column.logicalName === `${tableName}id`,
    DisplayName: labelOf(column.displayName, `${tableName}.${column.logicalName}`),
    Description: labelOf(null, ''),
    RequiredLevel: { Value: 'None', CanBeChanged: true, ManagedPropertyLogicalName: 'canmodifyrequirementlevelsettings' },
    MetadataId: metadataId(`${tableName}.${column.logicalName}`),
  };
}

/** An OptionSet (or GlobalOptionSet) as the Web API expands it. */
export function optionSetOf(tableName: string, column: ColumnFacts) {
  const global = column.globalChoice ?? null;
  const options = (column.options ?? []).map(([value, label]) => ({
    Value: value,
    Color: null,
    IsManaged: true,
    ExternalValue: null,
    ParentValues: [],
    Tag: null,
    IsHidden: false,
    MetadataId: null,
    HasChanged: null,
    Label: labelOf(label, `${tableName}.${column.logicalName}.${value}`),
    Description: labelOf(null, ''),
    // StateOptionMetadata names its default status; StatusOptionMetadata its state.
    ...(column.attributeType === 'State' ? { DefaultStatus: value + 1, InvariantName: label } : {}),
    ...(column.attributeType === 'Status' ? { State: value - 1, TransitionData: null } : {}),
  }));
  return {
    MetadataId: metadataId(`optionset:${global ?? `${tableName}.${column.logicalName}`}`),
    Name: global ?? `${tableName}_${column.logicalName}`,
    IsGlobal: global !== null,
    OptionSetType: column.attributeType === 'Virtual' ? 'MultiSelectPicklist' : column.attributeType,
    Options: options,
  };
}

/** Table-level EntityMetadata properties (before $select). */
export function tableProperties(facts: TableFacts): Record<string, unknown> {
  return {
    LogicalName: facts.logicalName,
    SchemaName: facts.schemaName,
    EntitySetName: facts.entitySetName,
    LogicalCollectionName: facts.entitySetName,
    PrimaryIdAttribute: facts.primaryIdAttribute,
    PrimaryNameAttribute: facts.primaryNameAttribute,
    PrimaryImageAttribute: 'entityimage',
    ObjectTypeCode: facts.logicalName === 'account' ? 1 : facts.logicalName === 'contact' ? 2 : 10001,
    IsActivity: false,
    IsCustomEntity: facts.logicalName.startsWith('shko_'),
    OwnershipType: 'UserOwned',
    DisplayName: labelOf(facts.displayName, facts.logicalName),
    MetadataId: metadataId(facts.logicalName),
  };
}
